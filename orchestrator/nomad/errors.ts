// The Nomad face's error codes (the HTTP face maps them to statuses).
import { BatonError } from '../../protocol/errors.ts';

export const NomadErrorCode = {
  badRequest: 'nomad/bad-request',
  notFound: 'nomad/not-found',
  /** A deployment changed under every one of a reconcile's attempts (contention); tried again later. */
  conflict: 'nomad/conflict',
} as const;

export const badRequest = (msg: string): BatonError => new BatonError(NomadErrorCode.badRequest, msg);
