// The paging query of the Puppet face's lists (/jobs, /plan_jobs, /scheduled_jobs): limit, offset,
// order and order_by, each checked (a 400 naming the parameter) before any work.
import { apiError, ApiErrorCode } from '../errors.ts';
import { intQuery } from '../request.ts';
import { DEFAULT_PAGE_LIMIT } from './context.ts';

export interface PageQuery<O extends string> {
  limit: number;
  offset: number;
  order: 'asc' | 'desc';
  orderBy: O;
}

/** A list's paging: `orderBy` lists the keys it sorts by, the first its default. */
export function pageQuery<O extends string>(query: unknown, orderBy: readonly [O, ...O[]], defaultOrder: 'asc' | 'desc'): PageQuery<O> {
  const q = (query ?? {}) as Record<string, string | undefined>;
  const limit = intQuery(q.limit, 'limit', DEFAULT_PAGE_LIMIT);
  const offset = intQuery(q.offset, 'offset', 0);
  const order = (q.order ?? defaultOrder).toLowerCase();
  if (order !== 'asc' && order !== 'desc') throw apiError(ApiErrorCode.validation, `query parameter 'order' must be asc or desc, got '${q.order}'`);
  const by = (q.order_by ?? orderBy[0]) as O;
  if (!orderBy.includes(by)) throw apiError(ApiErrorCode.validation, `query parameter 'order_by' must be one of ${orderBy.join(', ')}, got '${by}'`);
  return { limit, offset, order, orderBy: by };
}
