// AES-256-GCM seal and open on caller-provided buffers through OpenSSL's EVP
// interface. node:crypto's Cipheriv returns a freshly allocated buffer from
// every update(); with 1 MiB chunks that allocation (page faults, zeroing,
// GC pressure) cost three times the cipher itself. Here the output goes
// where the caller says. Linked against libcrypto; inside node the EVP
// symbols resolve to the OpenSSL node exports, the same code node:crypto
// runs. Synchronous on purpose: callers are worker threads.
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#define TAG_LEN 16

static int throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

static int bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *what) {
  bool is = false;
  napi_typedarray_type type;
  void *d = NULL;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return throw_type(env, what);
  if (napi_get_typedarray_info(env, v, &type, len, &d, &ab, &off) != napi_ok || type != napi_uint8_array) return throw_type(env, what);
  // An empty array may have no backing store: any non-NULL pointer will do for zero bytes.
  static uint8_t empty;
  *data = d ? (uint8_t *)d : &empty;
  return 1;
}

static int args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) return throw_type(env, "wrong number of arguments");
  return 1;
}

static int check_key_nonce(napi_env env, size_t key_len, size_t nonce_len) {
  if (key_len != 32) return throw_type(env, "key must be 32 bytes");
  if (nonce_len != 12) return throw_type(env, "nonce must be 12 bytes");
  return 1;
}

static napi_value fail(napi_env env, EVP_CIPHER_CTX *ctx, const char *msg) {
  if (ctx) EVP_CIPHER_CTX_free(ctx);
  napi_throw_error(env, NULL, msg);
  return NULL;
}

// seal(key, nonce, aad, plaintext, out): out = ciphertext | tag.
static napi_value seal(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *key, *nonce, *aad, *pt, *out;
  size_t key_len, nonce_len, aad_len, pt_len, out_len;
  if (!args(env, info, 5, argv)) return NULL;
  if (!bytes(env, argv[0], &key, &key_len, "key must be a Uint8Array") || !bytes(env, argv[1], &nonce, &nonce_len, "nonce must be a Uint8Array") ||
      !bytes(env, argv[2], &aad, &aad_len, "aad must be a Uint8Array") || !bytes(env, argv[3], &pt, &pt_len, "plaintext must be a Uint8Array") ||
      !bytes(env, argv[4], &out, &out_len, "out must be a Uint8Array"))
    return NULL;
  if (!check_key_nonce(env, key_len, nonce_len)) return NULL;
  if (out_len != pt_len + TAG_LEN) return (throw_type(env, "out must be plaintext length + 16 bytes"), NULL);
  if (pt_len > 0x7fffffff || aad_len > 0x7fffffff) return (throw_type(env, "input too large"), NULL);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  if (!ctx) return fail(env, NULL, "EVP_CIPHER_CTX_new failed");
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1) return fail(env, ctx, "EVP_EncryptInit_ex failed");
  if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1) return fail(env, ctx, "GCM AAD failed");
  if (EVP_EncryptUpdate(ctx, out, &n, pt, (int)pt_len) != 1 || (size_t)n != pt_len) return fail(env, ctx, "GCM encrypt failed");
  if (EVP_EncryptFinal_ex(ctx, out + pt_len, &n) != 1 || n != 0) return fail(env, ctx, "GCM final failed");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + pt_len) != 1) return fail(env, ctx, "GCM tag failed");
  EVP_CIPHER_CTX_free(ctx);
  return NULL;
}

// open(key, nonce, aad, ciphertext, tag, out) -> boolean
static napi_value open_(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  uint8_t *key, *nonce, *aad, *ct, *tag, *out;
  size_t key_len, nonce_len, aad_len, ct_len, tag_len, out_len;
  if (!args(env, info, 6, argv)) return NULL;
  if (!bytes(env, argv[0], &key, &key_len, "key must be a Uint8Array") || !bytes(env, argv[1], &nonce, &nonce_len, "nonce must be a Uint8Array") ||
      !bytes(env, argv[2], &aad, &aad_len, "aad must be a Uint8Array") || !bytes(env, argv[3], &ct, &ct_len, "ciphertext must be a Uint8Array") ||
      !bytes(env, argv[4], &tag, &tag_len, "tag must be a Uint8Array") || !bytes(env, argv[5], &out, &out_len, "out must be a Uint8Array"))
    return NULL;
  if (!check_key_nonce(env, key_len, nonce_len)) return NULL;
  if (tag_len != TAG_LEN) return (throw_type(env, "tag must be 16 bytes"), NULL);
  if (out_len != ct_len) return (throw_type(env, "out must be ciphertext length"), NULL);
  if (ct_len > 0x7fffffff || aad_len > 0x7fffffff) return (throw_type(env, "input too large"), NULL);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  if (!ctx) return fail(env, NULL, "EVP_CIPHER_CTX_new failed");
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1) return fail(env, ctx, "EVP_DecryptInit_ex failed");
  if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1) return fail(env, ctx, "GCM AAD failed");
  if (EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_len) != 1 || (size_t)n != ct_len) return fail(env, ctx, "GCM decrypt failed");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1) return fail(env, ctx, "GCM set tag failed");
  int ok = EVP_DecryptFinal_ex(ctx, out + ct_len, &n) == 1;
  EVP_CIPHER_CTX_free(ctx);
  // Unauthenticated plaintext never leaves: wipe it before saying no.
  if (!ok) OPENSSL_cleanse(out, out_len);
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"seal", NULL, seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, open_, NULL, NULL, NULL, napi_enumerable, NULL},
      {"version", NULL, version, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
