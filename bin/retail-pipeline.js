#!/usr/bin/env node
// Runs the TypeScript CLI through tsx: no build step between a checkout and a working command.
import { register } from 'tsx/esm/api';

// Node 20 is supported by the SDK versions we pin; its notice about future versions is noise in CLI output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../cli/main.ts');
await main(process.argv);
