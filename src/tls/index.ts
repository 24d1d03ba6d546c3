// TLS for the gateway and the admin API: certificates checked at start, chosen by SNI, reloaded live; HTTP to HTTPS redirects.
export { loadCertificate, certificateNames, type CertificateFiles, type CertificateFlags, type LoadedCertificate } from './certificate.js';
export { nameCovers, pickCertificate } from './server-names.js';
export { TlsCertificates, DEFAULT_HANDSHAKE_TIMEOUT_MS, type TlsCertificatesOptions, type TlsReloadResult } from './tls-certificates.js';
export { startHttpsRedirect, httpsLocation, type HttpsRedirect, type HttpsRedirectOptions } from './https-redirect.js';
