/* SPDX-License-Identifier: Apache-2.0 */
/* Pool ownership of OpenSSL objects: scep_util_own_<name>(p, obj) registers a cleanup on
 * `p` that frees `obj` with the pool and returns `obj` (NULL is passed through, nothing
 * registered).  One list says which types and how each is freed; scep_util.c defines the
 * functions from it.  Core only: the glue sees no OpenSSL types. */
#ifndef SCEP_UTIL_OWN_H
#define SCEP_UTIL_OWN_H

#include <apr_pools.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* X(name, pointer type, how `obj` is freed) */
#define SCEP_UTIL_OWNED(X)                                                               \
    X(X509, X509 *, X509_free(obj))                                                      \
    X(X509_REQ, X509_REQ *, X509_REQ_free(obj))                                          \
    X(X509_CRL, X509_CRL *, X509_CRL_free(obj))                                          \
    X(X509_NAME, X509_NAME *, X509_NAME_free(obj))                                       \
    X(X509_EXTENSION, X509_EXTENSION *, X509_EXTENSION_free(obj))                        \
    X(EVP_PKEY, EVP_PKEY *, EVP_PKEY_free(obj))                                          \
    X(EVP_MD, EVP_MD *, EVP_MD_free(obj))                                                \
    X(CMS_ContentInfo, CMS_ContentInfo *, CMS_ContentInfo_free(obj))                     \
    X(BIO, BIO *, BIO_free(obj))                                                         \
    /* a stack and the certificates in it */                                             \
    X(X509_stack, STACK_OF(X509) *, sk_X509_pop_free(obj, X509_free))                    \
    /* a stack only: its certificates belong to something else */                        \
    X(X509_list, STACK_OF(X509) *, sk_X509_free(obj))                                    \
    X(X509_EXTENSION_stack, STACK_OF(X509_EXTENSION) *,                                  \
      sk_X509_EXTENSION_pop_free(obj, X509_EXTENSION_free))

#define SCEP_UTIL_OWN_DECLARE(name, pointer, free_obj) \
    pointer scep_util_own_##name(apr_pool_t *p, pointer obj);
SCEP_UTIL_OWNED(SCEP_UTIL_OWN_DECLARE)
#undef SCEP_UTIL_OWN_DECLARE

#endif
