/*
 * Pure helpers for the gRPC-over-HTTP/2 wire details the proxy needs: grpc-timeout
 * parsing, grpc-message percent-encoding, the HTTP/2 client preface check, splitting a
 * :path into service and method, and the seedable PRNG for percent draws.
 * No I/O, no allocation, no global state.
 */
#ifndef GRPCGUARD_SC_GRPCWIRE_H
#define GRPCGUARD_SC_GRPCWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * grpc-timeout: 1..8 ASCII digits and a unit (H M S m u n). Returns 0 and milliseconds
 * (rounded up, so 1n is 1 ms) in *out_ms, or -1 when malformed.
 */
int sc_grpc_timeout_parse(const char *s, size_t len, uint64_t *out_ms);

/*
 * The gRPC code to count for a stream the client reset before it had a status: 4
 * DEADLINE_EXCEEDED when the reset came at the client's deadline, else 1 CANCELLED.
 * deadline_ms is our clock's arrival time plus grpc-timeout (0: the request had none),
 * timeout_ms the grpc-timeout itself, now_ms the time of the reset.
 *
 * Our deadline is a little later than the client's: its clock started before the headers
 * reached us, and encoders round grpc-timeout up (gRPC C-core to three significant
 * digits, up to 1%). Measured with grpcio through the sidecar: the reset of a client
 * whose deadline passed arrives 0-17 ms before ours. So a reset within 20 ms + 1% of the
 * timeout before our deadline, or any time after it, is the client's deadline.
 */
int sc_grpc_reset_code(uint64_t deadline_ms, uint64_t timeout_ms, uint64_t now_ms);

/*
 * Percent-encode a grpc-message as the gRPC spec asks: bytes outside 0x20..0x7e and '%'
 * become %XX. Writes at most outlen-1 bytes plus a NUL (truncating at a whole escape) and
 * returns the length written.
 */
size_t sc_grpc_message_encode(const char *msg, char *out, size_t outlen);

/* The 24-byte HTTP/2 client connection preface. */
#define SC_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define SC_H2_PREFACE_LEN 24

/*
 * Whether buf[0..len) (len <= 24) is a prefix of the preface: 1 complete match (len 24),
 * 0 a matching prefix (need more bytes), -1 not HTTP/2 prior knowledge.
 */
int sc_h2_preface_check(const uint8_t *buf, size_t len);

/*
 * "/pkg.Service/Method" -> service "pkg.Service", method "Method" (pointers into path).
 * Anything else (another shape, or a byte outside printable ASCII) yields service
 * "unknown" and method "unknown". Returns true when the path had the gRPC shape.
 */
bool sc_grpc_split_path(const char *path, size_t len, const char **svc, size_t *svc_len,
			const char **meth, size_t *meth_len);

/* xoshiro256** PRNG: one state per worker, seeded explicitly. */
struct sc_rng {
	uint64_t s[4];
};
void sc_rng_seed(struct sc_rng *r, uint64_t seed);
uint64_t sc_rng_next(struct sc_rng *r);
/* Uniform in [0, 100), the policy_rand_fn shape (ctx is a struct sc_rng). */
double sc_rng_percent(void *ctx);

#endif
