// A small typed client for the OpenStack Image API v2 (Glance) on undici.
export { GlanceClient } from './client.js';
export {
  GlanceBadRequest,
  GlanceConflict,
  GlanceError,
  GlanceForbidden,
  GlanceHttpError,
  GlanceInvalidLocation,
  GlanceInvalidResponse,
  GlanceNoData,
  GlanceNotFound,
  GlanceOutcomeUnknown,
  GlanceRangeNotSupported,
  GlanceRequestFailed,
  GlanceServerError,
  GlanceServiceRoleRequired,
  GlanceTimeout,
  GlanceTokenUnavailable,
  GlanceTooLarge,
  GlanceUnauthorized,
  GlanceUnavailable,
  GlanceUnsupportedMediaType,
  LocationFsidMismatch,
  LocationsNotAllowed,
  bodyExcerpt,
  type GlanceErrorDetails,
} from './errors.js';
export { GlanceLocationImportFailed } from './location-task.js';
export * from './locations.js';
export { judgeLocation, mayHaveApplied, type LocationState, type ReadBackOptions } from './outcome.js';
export type * from './types.js';
