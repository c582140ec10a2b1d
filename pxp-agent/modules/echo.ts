// `echo echo` {argument} → {outcome}; `ping ping` → {request_hops}: as Puppet's pxp-agent.
import { echoParamsSchema, emptyParamsSchema } from '../../schemas/pxp.ts';
import { compile } from '../../protocol/validate.ts';
import type { PxpModule } from './types.ts';

export const echoModule: PxpModule = {
  name: 'echo',
  actions: {
    echo: {
      kind: 'instant',
      validate: compile(echoParamsSchema),
      run: (params) => ({ outcome: (params as { argument: string }).argument }),
    },
  },
};

export const pingModule: PxpModule = {
  name: 'ping',
  actions: {
    // PCP v2 carries no debug chunks, so there are no hops to report beyond an empty list.
    ping: { kind: 'instant', validate: compile(emptyParamsSchema), run: () => ({ request_hops: [] }) },
  },
};
