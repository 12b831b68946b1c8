import { channel } from 'node:diagnostics_channel';

/**
 * Where a load's time goes, for whoever listens (the lake's bench, bench/lake.ts): the loader's
 * attempt and the lake's write publish the moments they reach on one diagnostics channel. Nothing is
 * made when nobody listens.
 */
export type LoadPhase =
  /** Every line of the object is typed: the load's COPY has them all (the warehouse finishes it). */
  | 'typed'
  /** The object's load committed. */
  | 'committed'
  /** A lake write's files are all encoded: a write the loader's tap started early waits for the commit. */
  | 'lake-encoded'
  /** A lake write's files are PUT and their partitions settled (its objects' markers follow). */
  | 'lake-written';

export interface LoadPhaseEvent {
  phase: LoadPhase;
  /** The object's key (the loader's phases; a lake write may cover several objects). */
  key?: string;
  /** performance.now() when it was reached. */
  at: number;
}

const phases = channel('retail-pipeline:load-phase');

export function markLoadPhase(phase: LoadPhase, key?: string): void {
  if (phases.hasSubscribers) phases.publish({ phase, key, at: performance.now() } satisfies LoadPhaseEvent);
}

/** Hears every phase reached until the answer is called. */
export function onLoadPhase(listener: (event: LoadPhaseEvent) => void): () => void {
  const heard = (message: unknown) => listener(message as LoadPhaseEvent);
  phases.subscribe(heard);
  return () => {
    phases.unsubscribe(heard);
  };
}
