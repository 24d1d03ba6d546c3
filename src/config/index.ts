// Shared configuration helpers: units and platform-wide defaults.
export { parseSize, parseDuration } from './units.js';
export { PlatformDefaults } from './defaults.js';
