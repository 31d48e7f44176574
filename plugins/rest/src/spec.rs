//! The `rest` source's `spec:`, in dlt's `rest_api` vocabulary: a `client` (base URL, headers,
//! params, auth, paginator), `resource_defaults`, and `resources`, each an endpoint whose
//! records become a table.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The `rest` source's `spec:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// How every request is made.
    pub client: ClientSpec,
    /// Settings every resource starts from (its own settings win, key by key in `params`).
    #[serde(default)]
    pub resource_defaults: ResourceDefaults,
    /// The endpoints to read, a table each.
    pub resources: Vec<ResourceSpec>,
    /// How many requests are in flight at once: children's first pages, and the pages of an
    /// offset or page-number paginator whose total the first answer gives.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 1000))]
    pub concurrency: usize,
}

fn default_concurrency() -> usize {
    8
}

/// The API's address and what every request carries.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// `https://api.example.com/v1/`: endpoint paths are joined to it. Its host is the grant the
    /// source needs (`quarry plugin inspect` and `quarry init` show it).
    pub base_url: String,
    /// Headers sent with every request (`${ENV}` expands, for secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters sent with every request.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// How pages follow one another, unless a resource says otherwise (default `auto`).
    #[serde(default)]
    pub paginator: Option<PaginatorSpec>,
    /// Seconds a request may take (connect, first byte, between bytes).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// How many times a request that fails (a refused connection, HTTP 429 or 5xx) is tried
    /// again, waiting as `Retry-After` says or twice as long each time from 250 ms.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout() -> u64 {
    30
}

fn default_retries() -> u32 {
    4
}

/// How requests authenticate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// `Authorization: Bearer TOKEN`.
    Bearer { token: String },
    /// A key in a header (`X-API-Key: KEY`) or a query parameter (`?api_key=KEY`).
    ApiKey {
        /// The header or parameter name.
        #[serde(default = "default_key_name")]
        name: String,
        api_key: String,
        #[serde(default)]
        location: KeyLocation,
    },
    /// `Authorization: Basic` with a user name and password.
    HttpBasic { username: String, password: String },
    /// OAuth 2 client credentials: a token asked for at `access_token_url` (a form POST of
    /// `grant_type=client_credentials`, the client's id and secret, and `scopes`), sent as a
    /// bearer token, and asked for again when it expires or a request is refused with 401.
    Oauth2ClientCredentials {
        access_token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default)]
        scopes: Vec<String>,
        /// More form fields for the token request (`audience`, ...).
        #[serde(default)]
        access_token_request_data: BTreeMap<String, String>,
    },
}

fn default_key_name() -> String {
    "Authorization".into()
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    #[default]
    Header,
    Query,
}

/// How to find the next page.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginatorSpec {
    /// Detected from the first answer: a `Link` header with `rel="next"`, or a next-page URL
    /// in the body (`next`, `links.next`, `_links.next.href`, `paging.next`, `meta.next`);
    /// otherwise a single page.
    Auto,
    /// One request, no pages.
    SinglePage,
    /// The next page's URL in the body, at `next_url_path` (a dot path).
    JsonLink {
        #[serde(default)]
        next_url_path: Option<String>,
    },
    /// The next page's URL in the `Link` header (`<...>; rel="next"`), as GitHub sends it.
    HeaderLink,
    /// `offset` and `limit` parameters: the offset grows by the records of each page until a
    /// page is empty, or the offset reaches the total at `total_path` (a server that returns
    /// fewer than `limit` is still read whole).
    Offset {
        limit: u64,
        #[serde(default)]
        offset: u64,
        #[serde(default = "default_offset_param")]
        offset_param: String,
        #[serde(default = "default_limit_param")]
        limit_param: String,
        #[serde(default)]
        total_path: Option<String>,
    },
    /// A page-number parameter from `base_page`, until a page is empty or the page count at
    /// `total_path` is reached.
    PageNumber {
        #[serde(default = "default_page_param")]
        page_param: String,
        #[serde(default = "default_base_page")]
        base_page: u64,
        #[serde(default)]
        total_path: Option<String>,
    },
    /// A token from the body (`cursor_path`) sent back as `cursor_param`, until the token is
    /// missing, null or empty.
    Cursor {
        #[serde(default = "default_cursor_path")]
        cursor_path: String,
        #[serde(default = "default_cursor_param")]
        cursor_param: String,
    },
}

fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_base_page() -> u64 {
    1
}
fn default_cursor_path() -> String {
    "cursors.next".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}

/// What every resource starts from.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceDefaults {
    #[serde(default)]
    pub primary_key: Option<Keys>,
    #[serde(default)]
    pub write_disposition: Option<WriteDisposition>,
    #[serde(default)]
    pub endpoint: Option<EndpointDefaults>,
}

/// Endpoint settings shared by every resource.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointDefaults {
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub paginator: Option<PaginatorSpec>,
    #[serde(default)]
    pub data_selector: Option<String>,
}

/// One column or several.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Keys {
    One(String),
    Many(Vec<String>),
}

impl Keys {
    pub fn names(&self) -> Vec<String> {
        match self {
            Keys::One(k) => vec![k.clone()],
            Keys::Many(k) => k.clone(),
        }
    }
}

/// How a resource's rows are written: `merge` upserts on the primary key (the destination's
/// `write_mode: overwrite`), `append` adds them (no primary key is declared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteDisposition {
    Merge,
    Append,
}

/// An endpoint whose records become table `name`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The table's name.
    pub name: String,
    /// The endpoint: a path, or the whole description.
    pub endpoint: EndpointSpec,
    #[serde(default)]
    pub primary_key: Option<Keys>,
    #[serde(default)]
    pub write_disposition: Option<WriteDisposition>,
    /// Arrow types for columns (`id: Int64`, `created_at: Timestamp(Microsecond, Some("UTC"))`,
    /// `payload: json`); the others are inferred from the first page of records.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// What the table is, for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// A path alone, or the whole endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EndpointSpec {
    Path(String),
    Full(Box<Endpoint>),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Joined to `base_url`; `{name}` is replaced by the value of param `name` (a `resolve`
    /// param takes it from each parent record).
    pub path: String,
    /// `GET` (the default) or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Query parameters: a value, or `{type: resolve, resource, field}` for a field of each
    /// record of the parent resource.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// A JSON body sent with a POST.
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Where the records are in the answer: a dot path (`data.items`), `$` for the body itself;
    /// by default the body if it is a list, else its only list of objects.
    #[serde(default)]
    pub data_selector: Option<String>,
    #[serde(default)]
    pub paginator: Option<PaginatorSpec>,
    /// Read only records past a cursor.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
}

fn default_method() -> String {
    "GET".into()
}

/// A query parameter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamSpec {
    Special(SpecialParam),
    Value(serde_json::Value),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpecialParam {
    /// A field of each record of resource `resource` (a dot path); the resource becomes this
    /// one's parent, and this one's rows carry the parent row's `_cq_id` in `_cq_parent_id`.
    Resolve { resource: String, field: String },
}

/// An incremental cursor: the largest value at `cursor_path` in the records read is kept in
/// the state backend, and the next sync sends it as `param`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSpec {
    /// The query parameter the cursor is sent as (`since`, `updated_since`).
    pub param: String,
    /// The field of each record that holds the cursor (a dot path).
    pub cursor_path: String,
    /// The cursor of the first sync.
    #[serde(default)]
    pub initial_value: Option<serde_json::Value>,
    /// An upper bound for a backfill, sent as `end_param`; the cursor is not saved past it.
    #[serde(default)]
    pub end_value: Option<serde_json::Value>,
    #[serde(default)]
    pub end_param: Option<String>,
}
