/*
 * The identity CA: loads the CA certificate and key (separate from the webhook's serving
 * pair) and signs workload certificates. The identity comes from the caller (a verified
 * TokenReview), never from the CSR: of the CSR only the public key is used, after its
 * self-signature (proof of possession) verifies. Every leaf has exactly one URI SAN (the
 * SPIFFE ID), CA:false, keyUsage digitalSignature (+ keyAgreement for EC keys,
 * keyEncipherment for RSA), EKU serverAuth + clientAuth, notBefore now - 5 min and
 * notAfter min(now + lifetime, CA notAfter). OpenSSL 3; no I/O after wh_ca_load, no
 * logging. A loaded CA is read-only and may be shared by threads.
 */
#ifndef GRPCGUARD_WH_CA_H
#define GRPCGUARD_WH_CA_H

#include <stddef.h>
#include <time.h>

#define WH_CA_MAX_CSR_BYTES (64 * 1024)
#define WH_CA_BACKDATE_S 300

struct wh_ca;

/*
 * Load a CA certificate (PEM; the first certificate signs, any following ones are its
 * issuers and go into each chain) and its private key. bundle_path (may be NULL) is the
 * PEM trust bundle handed to workloads; without it, the last certificate of cert_path.
 * Checks that the certificate is a CA (basicConstraints CA:TRUE), may sign certificates,
 * and matches the key. Returns a new CA, or NULL with where/what/fix in err.
 */
struct wh_ca *wh_ca_load(const char *cert_path, const char *key_path, const char *bundle_path,
			 char *err, size_t errlen);
/* The same from PEM in memory (tests, fuzz). bundle_pem may be NULL. */
struct wh_ca *wh_ca_load_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
			     size_t key_len, const char *bundle_pem, char *err, size_t errlen);
void wh_ca_free(struct wh_ca *ca); /* NULL ok */

/* The trust bundle (PEM, borrowed) and the CA certificate's notAfter. */
const char *wh_ca_bundle(const struct wh_ca *ca);
time_t wh_ca_not_after(const struct wh_ca *ca);

/*
 * Check a PEM CSR: exactly one CERTIFICATE REQUEST, its signature verifies with its own
 * key, and the key is EC P-256 or RSA of 2048..8192 bits. Returns 0, or -EINVAL with the
 * reason in err. Nothing else of the CSR (subject, extensions, requested SANs, CA:true) is
 * looked at: it is never used.
 */
int wh_ca_check_csr(const char *pem, size_t len, char *err, size_t errlen);

/*
 * Check csr_pem as above and sign a leaf for uri_san (e.g. spiffe://cluster.local/ns/a/sa/b)
 * valid lifetime_s from now (wall clock, seconds), cut at the CA's notAfter. On success 0,
 * *chain_pem a new string (the leaf, then those certificates of the CA file that are not
 * self-signed: nothing more when the CA is a root, the intermediates when it is not) and
 * *not_after. -EINVAL: bad CSR (err says
 * why); -ESTALE: the CA has expired; -ENOMEM/-EIO: signing failed. Leaves outputs untouched
 * on failure.
 */
int wh_ca_sign(const struct wh_ca *ca, const char *csr_pem, size_t csr_len, const char *uri_san,
	       unsigned lifetime_s, time_t now, char **chain_pem, time_t *not_after, char *err,
	       size_t errlen);

#endif
