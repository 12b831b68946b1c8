#!/usr/bin/env node
// CDK entry point (cdk.json: `node --import tsx infra/app.ts`). See docs/aws.md.
import { buildApp } from './build.ts';

buildApp().app.synth();
