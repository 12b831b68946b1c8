/**
 * The stream consumer's process as `npm start` runs it (cli/consumer-child.ts) plus the stream
 * bench's probes (bench/stream-probe.ts): bench/stream.ts passes this file as the consumer's entry.
 * Answers a `bench-probe-report` message with what it saw; `bench-probe-reset` starts over.
 */
import { runConsumerChild } from '#cli/consumer-child';
import { consumerProbe, probeMessages } from './stream-probe.ts';

let probe: ReturnType<typeof consumerProbe> | undefined;

await runConsumerChild({
  clients(clients) {
    probe = consumerProbe(clients);
  },
  message(message, context) {
    const type = (message as { type?: string }).type;
    if (type === probeMessages.reset) probe?.reset();
    if (type === probeMessages.report) context.send({ type: probeMessages.report, report: probe?.report() });
  },
});
