/* SPDX-License-Identifier: Apache-2.0 */
/* Requested extensions for the PKCS#10 requests unit tests make: written as openssl.cnf
 * lines, as an operator or a device profile would, and added one by one, so that a
 * request may carry an extension twice.  Include after cmocka.h. */
#ifndef SCEP_TEST_REQUEST_EXTENSIONS_H
#define SCEP_TEST_REQUEST_EXTENSIONS_H

#include <apr_strings.h>
#include <openssl/conf.h>
#include <openssl/x509v3.h>

/* `lines` are those of a section [ext]; more sections ([alt], …) may follow them. */
static void request_add_extensions(apr_pool_t *p, X509_REQ *req, const char *lines)
{
    const char *text = apr_pstrcat(p, "[ext]\n", lines, "\n", NULL);
    BIO *bio = BIO_new_mem_buf(text, -1);
    CONF *conf = NCONF_new(NULL);
    STACK_OF(X509_EXTENSION) *sk = sk_X509_EXTENSION_new_null();
    STACK_OF(CONF_VALUE) *section;
    X509V3_CTX ctx;
    int i;

    assert_true(bio && conf && sk && NCONF_load_bio(conf, bio, NULL) > 0);
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    X509V3_set_nconf(&ctx, conf);
    section = NCONF_get_section(conf, "ext");
    assert_non_null(section);
    for (i = 0; i < sk_CONF_VALUE_num(section); i++) {
        CONF_VALUE *v = sk_CONF_VALUE_value(section, i);
        X509_EXTENSION *ext = X509V3_EXT_nconf(conf, &ctx, v->name, v->value);

        if (!ext) {
            fail_msg("openssl cannot make the extension %s = %s", v->name, v->value);
        }
        assert_true(sk_X509_EXTENSION_push(sk, ext) > 0);
    }
    assert_int_equal(X509_REQ_add_extensions(req, sk), 1);
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
    NCONF_free(conf);
    BIO_free(bio);
}

#endif
