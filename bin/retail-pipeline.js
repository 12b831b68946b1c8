#!/usr/bin/env node
// Runs the TypeScript CLI through tsx: no build step between a checkout and a working command.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
await main(process.argv);
