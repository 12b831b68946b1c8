declare module 'kinesalite' {
  import type { Server } from 'node:http';
  export default function kinesalite(options?: Record<string, unknown>): Server;
}
declare module 'dynalite' {
  import type { Server } from 'node:http';
  export default function dynalite(options?: Record<string, unknown>): Server;
}
