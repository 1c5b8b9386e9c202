/*
 * The fixed key set the JWT fuzz targets verify against (fuzz/jwt.c, fuzz/jwt_authn.c):
 * one RSA-2048, one P-256 and one P-384 public key. fuzz/corpus/jwt holds tokens signed
 * by their private halves, which were not kept; tests/data/jwt/fuzz-jwks.json is the same
 * set as a file. A header of data only, included by one target each.
 */
#ifndef GRPCGUARD_FUZZ_JWT_KEYS_H
#define GRPCGUARD_FUZZ_JWT_KEYS_H

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"z9yAuuYIYrIQ77PGUDJy6hVjvDYyv08YV9CGRRnJpLlbeo5eNvBQS"
    "awmL1Vz1N7NQuv5BKTOXvIHF6VrVPGo7bFiPw9DtF6CCS7oxDKOYWZx_atjRjyzvc55MrzKFYUyRNRi4"
    "pqmG6CM4uwCixvF16HfIAoeqslN4zFzUkPvADmHZl5O0U_d_1e7lAiTiAHh1pJxtFoBqiKBmDXFhIsrb"
    "NGOcCOba0VAkNL7XQQXRDTyo8hL35VMFCZ4Zb7utHGTOCXlF-F21uMvCp5UxQNZyflHfCEROW0KshSfG"
    "Ly_ynIbw4Zfv0bGnWR3lVKjj2sZMdgUxui2iNRk_C5ITv_oLw\",\"e\":\"AQAB\",\"use\":\"sig\",\"kid\":"
    "\"rsa1\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"xqk_xyERRUjnU-pYQv0OWsbAVHcTP3McayuqeBj8N"
    "-A\",\"y\":\"YbjUqWoGbXYOyfhCTCrbo6XmpqSZqrW8FGXeK27SROQ\",\"use\":\"sig\",\"kid\":\"ec1\",\"a"
    "lg\":\"ES256\"},{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"CiDldGp7AwWYMDIJ8Ys2d4Oj-fnsSXbxHE1d"
    "fR6o2yeioOyp6ZLyBbs0ggxkEjmw\",\"y\":\"B0gnNiFt202BbGrAstWqGRbwVF2CZmud5aAeVLJo2JdS1"
    "sldwz3VPE8zfE2144tb\",\"use\":\"sig\",\"kid\":\"ec2\"}]}";

#endif
