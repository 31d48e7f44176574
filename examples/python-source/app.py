"""The component's app module: names the plugin and re-exports the contract's classes."""

import quarry_sdk

from example import Example

quarry_sdk.export(Example)

from quarry_sdk.component import Plugin, Source  # noqa: E402,F401 (the component's exports)
