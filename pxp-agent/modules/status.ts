// `status query` {transaction_id} → {transaction_id, status, stdout?, stderr?, exitcode?}, from
// the spool, so it answers across agent restarts. `status stop` {transaction_id} (Baton's own,
// for forced job stops) kills a running action's process group.
import { statusQueryParamsSchema } from '../../schemas/pxp.ts';
import { compile } from '../../protocol/validate.ts';
import type { Transactions } from '../transactions.ts';
import type { PxpModule } from './types.ts';

export function createStatusModule(transactions: Transactions): PxpModule {
  return {
    name: 'status',
    actions: {
      query: {
        kind: 'instant',
        validate: compile(statusQueryParamsSchema),
        run: (params) => transactions.status((params as { transaction_id: string }).transaction_id),
      },
      stop: {
        kind: 'instant',
        validate: compile(statusQueryParamsSchema),
        run: (params) => {
          const id = (params as { transaction_id: string }).transaction_id;
          return { transaction_id: id, stopped: transactions.stop(id, 'stopped by request (the job was stopped with force)') };
        },
      },
    },
  };
}
