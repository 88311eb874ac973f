export { createDashboardApp, toRunDetailJson, TOKEN_COOKIE, type DashboardAppOptions } from './server/dashboard-app';
export {
  startDashboard,
  ensureClientBuilt,
  checkDashboardBinding,
  DashboardConfigError,
  CLIENT_DIST_DIR,
  type StartDashboardOptions,
  type RunningDashboard,
} from './server/start-dashboard';
export { diffConfigs, type ConfigDifference } from './server/config-diff';
export type * from './api-types';
