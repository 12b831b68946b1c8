import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { LocalStack } from '#local/stack';
import { type Bundle, bundleEntry } from '../../infra/bundle.ts';
import type { LambdaEntryName } from '../../infra/entries.ts';
import {
  announcedKeys,
  type CfnTemplate,
  type LambdaFunction,
  type LocalNames,
  objectCreatedEvent,
  objectCreatedPrefixes,
  startLambda,
  synthesisedTemplate,
  type TemplateFunction,
  templateFunctions,
  templateResolver,
} from './lambda-harness.ts';
import { startTestStack, testConfig } from './stack.ts';

/**
 * aws mode, run here: the local stack, the synthesised template and the bundles `cdk deploy` uploads
 * for the functions a test runs, started together; what both aws-mode e2e files share.
 */
export interface AwsModeEnv<R extends LambdaEntryName> {
  workdir: string;
  stack: LocalStack;
  template: CfnTemplate;
  functions: Map<string, TemplateFunction>;
  names: LocalNames;
  resolve: (e: unknown) => string;
  bundles: Record<R, Bundle>;
  fnOf(run: R): TemplateFunction;
  /**
   * One bundle's cold start, as Lambda runs it, with every service's local endpoint (and `extra`);
   * `fn`: the template's function changed (a test's altered environment).
   */
  start(
    run: R,
    options?: { extra?: { secretsManager?: string }; fn?: TemplateFunction },
  ): Promise<LambdaFunction>;
  /**
   * The bucket's "Object Created" announcements that the template's rules route to `run`, each
   * awaited as it arrives: what EventBridge would deliver to that function.
   */
  triggersOf(run: R): (timeoutMs: number) => Promise<string>;
  /** S3's "Object Created" event for an object in the bucket, as EventBridge delivers it. */
  announce(key: string): Promise<ReturnType<typeof objectCreatedEvent>>;
  stop(): Promise<void>;
}

/**
 * Starts the stack with `stackEnv` (names that differ from the config's defaults: a function the
 * template forgot to give a name falls back to a default, finds no such resource here, and is
 * caught), synthesises the template and bundles `runs`, at once.
 */
export async function startAwsModeEnv<R extends LambdaEntryName>(
  runs: readonly R[],
  stackEnv: Record<string, string>,
  prefix: string,
): Promise<AwsModeEnv<R>> {
  const workdir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const cfg = await testConfig(stackEnv);
  const [stack, template, built] = await Promise.all([
    startTestStack(cfg),
    synthesisedTemplate(),
    Promise.all(runs.map((run) => bundleEntry(run, path.join(workdir, 'assets', run)))),
  ]);
  const bundles = Object.fromEntries(built.map((b) => [b.entry, b])) as Record<R, Bundle>;
  const functions = templateFunctions(template);
  const names: LocalNames = {
    region: cfg.region,
    account: '000000000000',
    stream: cfg.names.stream,
    table: cfg.names.table,
    bucket: cfg.names.bucket,
    deliveryStream: cfg.names.deliveryStream,
  };
  const resolve = templateResolver(template, names);
  const fnOf = (run: R): TemplateFunction => {
    const fn = functions.get(run);
    if (!fn) throw new Error(`no ${run} function in the template`);
    return fn;
  };
  return {
    workdir,
    stack,
    template,
    functions,
    names,
    resolve,
    bundles,
    fnOf,
    start(run, options = {}) {
      const e = stack.endpoints;
      if (!e.redshiftData)
        throw new Error('the local stack has no Redshift Data API (endpoints.json redshiftData)');
      return startLambda({
        fn: options.fn ?? fnOf(run),
        dir: bundles[run].dir,
        names,
        resolve,
        // Every service is reachable from every function, as on AWS: only the role limits what it may call.
        endpoints: {
          kinesis: e.kinesis,
          dynamodb: e.dynamodb,
          s3: e.s3,
          firehose: e.firehose,
          redshiftData: e.redshiftData,
          ...options.extra,
        },
      });
    },
    triggersOf(run) {
      const prefixes = objectCreatedPrefixes(template, fnOf(run).logicalId);
      if (prefixes.length === 0) throw new Error(`no Object Created rule targets ${run} in the template`);
      return announcedKeys(
        (listener) => stack.onObjectCreated(listener),
        (key) => prefixes.some((p) => key.startsWith(p)),
        `object under ${prefixes.join(', ')}`,
      );
    },
    async announce(key) {
      const head = await stack.clients.s3.send(new HeadObjectCommand({ Bucket: names.bucket, Key: key }));
      return objectCreatedEvent(names.bucket, key, Number(head.ContentLength ?? 0));
    },
    async stop() {
      await stack.stop();
      await fs.rm(workdir, { recursive: true, force: true });
    },
  };
}
