// The JavaScript SDK inside a component: everything in `core.js`, and `exportPlugin`.
export * from './core.js';
export { exportPlugin } from './component.js';
