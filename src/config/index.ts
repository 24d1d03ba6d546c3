// Shared configuration helpers: units and platform-wide defaults.
export { parseSize, parseDuration } from './units.js';
export { PlatformDefaults } from './defaults.js';
export { nearestName } from './nearest-name.js';
export { NODE_SETTINGS, envOf, flagOf, settingFlagOf, settingsOf } from './node-settings.js';
export type { NodeCommand, SettingDef, SettingValue } from './node-settings.js';
export { configChanges, describeConfig, NODE_CONFIG_FILE, resolveNodeConfig, settingValue } from './node-config.js';
export type { ConfigInputs, NodeConfig, ResolvedSetting, SettingSource } from './node-config.js';
export { LIMIT_DEFAULT_SETTINGS, limitDefaultsFrom, platformLimitDefaults } from './limit-defaults.js';
export type { DefaultableLimit, LimitDefaults } from './limit-defaults.js';
export { HANDLER_SOURCE_EXTENSIONS, handlerSourceBeside } from './handler-source.js';
