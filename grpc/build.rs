//! Compiles the protocol's `.proto` files with `protox` (a protobuf compiler in Rust: nothing is
//! downloaded) and generates the tonic service code from the descriptors.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/cloudquery/plugin/v3/plugin.proto",
        "proto/cloudquery/discovery/v1/discovery.proto",
        "proto/cloudquery/discovery/v0/discovery.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
