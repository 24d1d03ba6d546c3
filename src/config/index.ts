// Shared configuration helpers: units and platform-wide defaults.
export { parseSize, parseDuration, formatSize } from './units.js';
export { PlatformDefaults } from './defaults.js';
