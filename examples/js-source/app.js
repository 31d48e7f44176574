// The component's app module: the example plugin's exports, with HTTP through the host.
import { exportPlugin } from 'quarry-sdk';
import { getJson } from 'quarry-sdk/http.js';

import { definition, Example } from './example.js';

Example.prototype.httpGet = getJson;

export const { plugin, source } = exportPlugin(definition);
