// What the panel takes from @forge/bridge, straight from the package's own modules (files under
// out/, unchanged). Its index would bring ~220 KB (lodash, iframe-resizer, @forge/i18n) for the few
// calls the panel makes. `view` holds only `theme` here, so panel code reads as @forge/bridge's
// documented API: `invokeRemote(...)`, `view.theme.enable()`, `showFlag(...)`.
import { theme } from "./node_modules/@forge/bridge/out/view/theme.js";

export { BridgeAPIError } from "./node_modules/@forge/bridge/out/errors.js";
export { showFlag } from "./node_modules/@forge/bridge/out/flag/flag.js";
export { invokeRemote } from "./node_modules/@forge/bridge/out/invoke-endpoint/invoke-remote.js";
export const view = { theme };
