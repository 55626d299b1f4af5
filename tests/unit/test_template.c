/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate templates (scep_template.c) and their use by the issuer (scep_issue.c) and
 * the forwarding gateway's check (scep_policy.c): real PKCS#10 requests made here with
 * OpenSSL and read by scep_csr_parse, certificates signed by a scratch CA and read back
 * field by field.  The hostile requests of issue 17 come first in each group. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/conf.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "scep_ca.h"
#include "scep_issue.h"
#include "scep_policy.h"
#include "scep_template.h"
#include "request_extensions.h"

#define NOW 1790000000
#define SID_URI SCEP_TEMPLATE_SID_PREFIX "S-1-5-21-1004336348-1177238915-682003330-512"

static char dir[] = "/tmp/scep-template-XXXXXX";
static EVP_PKEY *device_key;
static scep_ca_t *ca;
static apr_pool_t *ca_pool, *scratch_pool;

/* ---- fixtures ------------------------------------------------------------------------ */

static void write_ca(const char *name, X509 *cert, EVP_PKEY *key)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    if (cert) {
        PEM_write_X509(f, cert);
    }
    if (key) {
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    }
    fclose(f);
    chmod(path, 0600);
}

static int setup_all(void **state)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);   /* SCEP key transport needs an RSA CA */
    X509 *x = X509_new();
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    scep_ca_files_t files = { 0 };
    const char *err = NULL;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_true(key && x);
    device_key = EVP_EC_gen("P-256");
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"Template CA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365 * 20);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    write_ca("ca.pem", x, NULL);
    write_ca("ca.key", NULL, key);
    X509_free(x);
    EVP_PKEY_free(key);
    apr_pool_create(&ca_pool, NULL);
    apr_pool_create(&scratch_pool, NULL);
    files.ca_cert_file = apr_pstrcat(ca_pool, dir, "/ca.pem", NULL);
    files.ca_key_file = apr_pstrcat(ca_pool, dir, "/ca.key", NULL);
    if (scep_ca_load(ca_pool, &files, NULL, &ca, &err) != APR_SUCCESS) {
        fail_msg("scep_ca_load: %s", err);
    }
    return 0;
}

static int teardown_all(void **state)
{
    char cmd[128];

    (void)state;
    apr_pool_destroy(scratch_pool);
    apr_pool_destroy(ca_pool);
    EVP_PKEY_free(device_key);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Each test starts with the one scratch pool emptied (the group teardown frees it). */
static int fresh_pool(void **state)
{
    apr_pool_clear(scratch_pool);
    *state = scratch_pool;
    return 0;
}

/* When set, the first occurrence of these bytes in the signed DER becomes patch_to (the
 * parse does not verify the signature): what OpenSSL will not encode, a device may send. */
static const char *patch_from, *patch_to;

/* A request: `subject` as "type=value" lines (a value may hold any byte but NUL and a
 * newline), `exts` as openssl.cnf lines of a section [ext], more sections after it. */
static scep_csr_t *request(apr_pool_t *p, const char *subject, const char *exts)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char *der = NULL, *copy;
    scep_csr_t *csr = NULL;
    const char *why = NULL, *line;
    char *lines, *last, *eq;
    int len;

    lines = apr_pstrdup(p, subject);
    for (line = apr_strtok(lines, "\n", &last); line; line = apr_strtok(NULL, "\n", &last)) {
        assert_non_null(eq = strchr(line, '='));
        *eq = '\0';
        /* a UTF8String of the bytes as they are, so that a test can send bad UTF-8 */
        if (X509_NAME_add_entry_by_txt(name, line, V_ASN1_UTF8STRING,
                                       (const unsigned char *)eq + 1, -1, -1, 0) != 1) {
            fail_msg("the subject attribute %s=%s", line, eq + 1);
        }
    }
    assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
    assert_int_equal(X509_REQ_set_pubkey(req, device_key), 1);
    if (exts) {
        request_add_extensions(p, req, exts);
    }
    assert_true(X509_REQ_sign(req, device_key, EVP_sha256()) > 0);
    assert_true((len = i2d_X509_REQ(req, &der)) > 0);
    copy = apr_pmemdup(p, der, (apr_size_t)len);
    OPENSSL_free(der);
    if (patch_from) {
        size_t n = strlen(patch_from);
        int i;

        for (i = 0; i + (int)n <= len && memcmp(copy + i, patch_from, n) != 0; i++) {
        }
        if (i + (int)n <= len) {
            memcpy(copy + i, patch_to, n);
        }
        patch_from = NULL;
        assert_true(i + (int)n <= len);
    }
    X509_NAME_free(name);
    X509_REQ_free(req);
    if (scep_csr_parse(p, copy, (apr_size_t)len, &csr, &why) != APR_SUCCESS) {
        fail_msg("scep_csr_parse: %s", why);
    }
    return csr;
}

static scep_template_t *preset(apr_pool_t *p, const char *name)
{
    scep_template_t *t = scep_template_new(p);
    const char *const *eku;
    unsigned int ku;

    assert_null(scep_template_preset(t, name, &ku, &eku));
    return t;
}

/* A ScepTemplateSubject / ScepTemplateSAN line's words: its error, or NULL. */
static const char *rule_error(scep_template_t *t, apr_pool_t *p, int is_san,
                              const char *words)
{
    char *copy = apr_pstrdup(p, words), *last, *w;
    const char *argv[8];
    int argc = 0;

    for (w = apr_strtok(copy, " ", &last); w && argc < 8; w = apr_strtok(NULL, " ", &last)) {
        argv[argc++] = w;
    }
    return scep_template_add_rule(t, p, is_san, argc, argv);
}

static void rule(scep_template_t *t, apr_pool_t *p, int is_san, const char *words)
{
    const char *err = rule_error(t, p, is_san, words);

    if (err) {
        fail_msg("%s: %s", words, err);
    }
}

/* What an MDM device endpoint writes out: tls-client with the request's e-mail, UPN and
 * SID URI (no preset takes the last two from a request). */
static scep_template_t *mdm_template(apr_pool_t *p)
{
    scep_template_t *t = preset(p, "tls-client");

    rule(t, p, 1, "rfc822Name request");
    rule(t, p, 1, "upn request");
    rule(t, p, 1, "URI request 1 " SCEP_TEMPLATE_SID_PREFIX);
    return t;
}

static scep_identity_t *identity(apr_pool_t *p, scep_identity_kind_e kind,
                                 scep_identity_where_e where, const char *name)
{
    scep_identity_t *id = apr_pcalloc(p, sizeof(*id));

    id->kind = kind;
    id->where = where;
    id->name = kind == SCEP_IDENTITY_HOST ? NULL : name;
    id->fqdn = kind == SCEP_IDENTITY_HOST ? name : apr_pstrcat(p, "name:", name, NULL);
    id->ips = apr_array_make(p, 1, sizeof(const char *));
    return id;
}

/* The refusal of `csr`, or NULL when the template certifies it. */
static const char *refusal(apr_pool_t *p, const scep_template_t *t, const scep_csr_t *csr,
                           const scep_identity_t *id, scep_template_result_t *out)
{
    scep_template_result_t unused;
    const char *why = NULL;
    apr_status_t rv = scep_template_apply(p, t, csr, id, 0, out ? out : &unused, &why);

    assert_true((rv == APR_SUCCESS) == (why == NULL));
    return why;
}

#define REFUSED(p, t, csr, id, phrase) do {                                               \
        const char *why_ = refusal(p, t, csr, id, NULL);                                  \
        if (!why_ || !strstr(why_, phrase)) {                                             \
            fail_msg("expected a refusal naming \"%s\", got %s", phrase,                 \
                     why_ ? why_ : "none");                                               \
        }                                                                                 \
    } while (0)

/* The dropped notes joined, to look for a phrase in. */
static const char *dropped_text(apr_pool_t *p, const scep_template_result_t *r)
{
    const char *text = "";
    int i;

    for (i = 0; i < r->dropped->nelts; i++) {
        text = apr_pstrcat(p, text, APR_ARRAY_IDX(r->dropped, i, const char *), "\n", NULL);
    }
    return text;
}

/* Where the SID security extension (1.3.6.1.4.1.311.25.2) is in x, or -1. */
static int sid_extension_at(const X509 *x)
{
    ASN1_OBJECT *sid = OBJ_txt2obj("1.3.6.1.4.1.311.25.2", 1);
    int at;

    assert_non_null(sid);
    at = X509_get_ext_by_OBJ(x, sid, -1);
    ASN1_OBJECT_free(sid);
    return at;
}

static X509 *issue(apr_pool_t *p, scep_profile_t *profile, const scep_csr_t *csr,
                   const scep_identity_t *id)
{
    const apr_array_header_t *dropped;
    const char *why = NULL;
    X509 *x = NULL;

    if (scep_issue_certificate(p, ca, profile, csr, id, NOW, &x, &dropped, &why)
        != APR_SUCCESS) {
        fail_msg("scep_issue_certificate: %s", why);
    }
    return x;
}

static const char *subject_of(apr_pool_t *p, X509 *x)
{
    return scep_csr_name_text(p, X509_get_subject_name(x));
}

/* The certificate's SANs as "type:value" lines, in order. */
static const char *sans_of(apr_pool_t *p, X509 *x, int *critical)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, critical, NULL);
    const char *text = "";
    int i;

    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const char *v = "?";

        if (gn->type == GEN_OTHERNAME) {
            assert_int_equal(OBJ_obj2nid(gn->d.otherName->type_id), NID_ms_upn);
            assert_int_equal(gn->d.otherName->value->type, V_ASN1_UTF8STRING);
            v = apr_pstrcat(p, "upn:", (const char *)ASN1_STRING_get0_data(
                                gn->d.otherName->value->value.utf8string), NULL);
        }
        else if (gn->type == GEN_IPADD) {
            v = "ip";
        }
        else {
            v = apr_pstrcat(p, scep_csr_san_type_name(gn->type), ":",
                            (const char *)ASN1_STRING_get0_data(gn->d.ia5), NULL);
        }
        text = apr_pstrcat(p, text, v, "\n", NULL);
    }
    GENERAL_NAMES_free(names);
    return text;
}

/* ---- values -------------------------------------------------------------------------- */

static void test_value_problems(void **state)
{
    char long_cn[66];

    (void)state;
    memset(long_cn, 'a', 65);
    long_cn[65] = '\0';
    assert_null(scep_template_value_problem("John's iPhone", 64));
    assert_null(scep_template_value_problem("J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\xb1", 64));
    assert_non_null(scep_template_value_problem("", 64));
    assert_non_null(scep_template_value_problem(NULL, 64));
    assert_non_null(scep_template_value_problem("tab\there", 64));
    assert_non_null(scep_template_value_problem("del\x7f", 64));
    assert_non_null(scep_template_value_problem("c1 \xc2\x85", 64));      /* NEL */
    assert_non_null(scep_template_value_problem("\xc0\xaf", 64));          /* overlong */
    assert_non_null(scep_template_value_problem("\xed\xa0\x80", 64));      /* surrogate */
    assert_non_null(scep_template_value_problem("\xff", 64));
    assert_non_null(scep_template_value_problem("cut \xe2\x82", 64));
    assert_non_null(scep_template_value_problem(long_cn, 64));
    long_cn[64] = '\0';
    assert_null(scep_template_value_problem(long_cn, 64));
    /* the bound counts characters, not bytes */
    assert_null(scep_template_value_problem("\xc3\xbc\xc3\xbc", 2));
}

/* ---- configuration --------------------------------------------------------------------- */

static void test_configuration_errors(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *t = scep_template_new(p);
    const char *const *eku;
    unsigned int ku;

    assert_non_null(scep_template_preset(t, "server", &ku, &eku));
    assert_null(scep_template_preset(t, "vpn", &ku, &eku));
    assert_int_equal(ku, SCEP_KU_DIGITAL_SIGNATURE | SCEP_KU_KEY_ENCIPHERMENT);
    assert_string_equal(eku[2], "ipsecIKE");
    assert_non_null(scep_template_preset(t, "tls-client", &ku, &eku)); /* one a section */
    assert_non_null(rule_error(t, p, 0, "CN somewhere"));
    assert_non_null(rule_error(t, p, 0, "givenName request"));
    assert_non_null(rule_error(t, p, 1, "URI request 0"));
    assert_non_null(rule_error(t, p, 1, "URI request 2x"));
    assert_non_null(rule_error(t, p, 1, "URI request 1 prefix: extra"));
    assert_non_null(rule_error(t, p, 0, "CN request 1 prefix:"));
    assert_non_null(rule_error(t, p, 0, "CN fixed bell\a"));
    assert_non_null(rule_error(t, p, 0, "C fixed DEU"));
    assert_non_null(rule_error(t, p, 0, "C identity DE"));
    assert_non_null(rule_error(t, p, 0, "C fixed"));
    assert_null(rule_error(t, p, 0, "C fixed DE"));
    assert_non_null(rule_error(t, p, 1, "iPAddress fixed 192.0.2.300"));
    assert_non_null(rule_error(t, p, 1, "dNSName fixed *.example.org"));
    assert_non_null(rule_error(t, p, 1, "rfc822Name fixed nobody"));
    assert_null(rule_error(t, p, 1, "iPAddress fixed 192.0.2.30"));
    assert_non_null(scep_template_set_unlisted(t, "ignore"));
    /* csr and cn copy: no rules with them, in either order */
    t = scep_template_new(p);
    assert_null(scep_template_preset(t, "cn", &ku, &eku));
    assert_int_equal(t->copy, SCEP_TEMPLATE_COPY_CN);
    assert_non_null(rule_error(t, p, 0, "CN request"));
    t = scep_template_new(p);
    assert_null(rule_error(t, p, 0, "CN request"));
    assert_non_null(scep_template_preset(t, "csr", &ku, &eku));
}

/* A section's own lines replace the preset's rules of their kind, before or after it. */
static void test_own_rules_replace_the_presets(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *before = scep_template_new(p), *after;
    const char *const *eku;
    unsigned int ku;

    rule(before, p, 0, "O fixed Example");
    assert_null(scep_template_preset(before, "tls-client", &ku, &eku));
    after = preset(p, "tls-client");
    rule(after, p, 0, "O fixed Example");
    assert_int_equal(before->subject->nelts, 1);
    assert_int_equal(after->subject->nelts, 1);
    assert_int_equal(before->sans->nelts, after->sans->nelts);
    assert_int_equal(after->sans->nelts, 2);
}

/* ---- hostile requests ----------------------------------------------------------------- */

static const char *const ca_powers[] = {
    "basicConstraints = critical,CA:TRUE", "cA TRUE",
    "keyUsage = critical,keyCertSign", "keyCertSign",
    "keyUsage = cRLSign,digitalSignature", "cRLSign",
    "extendedKeyUsage = anyExtendedKeyUsage,clientAuth", "anyExtendedKeyUsage",
    "nameConstraints = permitted;DNS:example.org", "nameConstraints",
};

static void test_ca_powers_refused_or_dropped(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *refuse = preset(p, "tls-client"), *drop = preset(p, "tls-client");
    scep_profile_t profile;
    size_t i;

    assert_null(scep_template_set_unlisted(drop, "drop"));
    scep_profile_defaults(&profile, p);
    profile.template_ = drop;
    for (i = 0; i < sizeof(ca_powers) / sizeof(ca_powers[0]); i += 2) {
        scep_csr_t *csr = request(p, "CN=John's iPhone", ca_powers[i]);
        scep_template_result_t r;
        X509 *x;
        BASIC_CONSTRAINTS *bc;
        ASN1_BIT_STRING *ku;
        EXTENDED_KEY_USAGE *eku;
        int j;

        REFUSED(p, refuse, csr, NULL, ca_powers[i + 1]);
        assert_null(refusal(p, drop, csr, NULL, &r));
        assert_non_null(strstr(dropped_text(p, &r), ca_powers[i + 1]));
        /* and what is issued holds none of it */
        x = issue(p, &profile, csr, NULL);
        assert_non_null(bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL));
        assert_false(bc->ca);
        BASIC_CONSTRAINTS_free(bc);
        assert_non_null(ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL));
        assert_false(ASN1_BIT_STRING_get_bit(ku, 5) || ASN1_BIT_STRING_get_bit(ku, 6));
        ASN1_BIT_STRING_free(ku);
        assert_non_null(eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL));
        for (j = 0; j < sk_ASN1_OBJECT_num(eku); j++) {
            assert_int_equal(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, j)), NID_client_auth);
        }
        sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
        assert_int_equal(X509_get_ext_by_NID(x, NID_name_constraints, -1), -1);
        assert_string_equal(subject_of(p, x), "CN=John's iPhone");
    }
}

static void test_smuggled_names(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *refuse = preset(p, "tls-client"), *drop = preset(p, "tls-client");
    scep_template_t *t_vpn;
    scep_template_result_t r;
    scep_csr_t *csr;
    char *long_uri = apr_palloc(p, 1100);

    assert_null(scep_template_set_unlisted(drop, "drop"));
    /* a second CN */
    csr = request(p, "CN=John's iPhone\nCN=admin", NULL);
    REFUSED(p, refuse, csr, NULL, "beyond the 1 CN");
    assert_null(refusal(p, drop, csr, NULL, &r));
    assert_int_equal(r.subject->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(r.subject, 0, scep_template_name_t).value,
                        "John's iPhone");
    /* an attribute no rule takes */
    csr = request(p, "CN=John's iPhone\nO=Evil Corp", NULL);
    REFUSED(p, refuse, csr, NULL, "O=Evil Corp");
    assert_null(refusal(p, drop, csr, NULL, &r));
    assert_non_null(strstr(dropped_text(p, &r), "O=Evil Corp"));
    /* a URI outside the SID prefix, a second e-mail */
    csr = request(p, "CN=x", "subjectAltName = URI:https://evil.example/,"
                  "email:a@example.org,email:b@example.org");
    REFUSED(p, refuse, csr, NULL, "URI https://evil.example/");
    assert_null(refusal(p, drop, csr, NULL, &r));
    assert_int_equal(r.sans->nelts, 1);
    /* control characters, NUL, bad UTF-8, too long */
    csr = request(p, "CN=John\x1b[2J", "subjectAltName = email:john@example.org");
    REFUSED(p, refuse, csr, NULL, "control character");
    assert_null(refusal(p, drop, csr, NULL, &r));
    assert_int_equal(r.subject->nelts, 0);
    assert_non_null(strstr(dropped_text(p, &r), "CN=John\\x1b[2J"));
    /* (a subject with bad UTF-8 does not even parse: OpenSSL's decoder refuses it) */
    patch_from = "Zq9Z";
    patch_to = "Z\xc3(Z";
    csr = request(p, "CN=x", "subjectAltName = otherName:msUPN;UTF8:Zq9Z@example.org");
    REFUSED(p, refuse, csr, NULL, "msUPN Z\\xc3(Z@example.org, which does not decode");
    csr = request(p, "CN=0123456789012345678901234567890123456789012345678901234567890123"
                  "456789", NULL);
    REFUSED(p, refuse, csr, NULL, "at most 64");
    memset(long_uri, 'a', 1099);
    memcpy(long_uri, "URI:" SCEP_TEMPLATE_SID_PREFIX, 4 + strlen(SCEP_TEMPLATE_SID_PREFIX));
    long_uri[1099] = '\0';
    csr = request(p, "CN=x", apr_pstrcat(p, "subjectAltName = @alt\n[alt]\nURI.1 = ",
                                         long_uri + 4, NULL));
    REFUSED(p, refuse, csr, NULL, "does not decode");
    /* names of the wrong form: a wildcard, no host, no e-mail address */
    t_vpn = preset(p, "vpn");
    csr = request(p, "CN=x", "subjectAltName = DNS:*.example.org");
    REFUSED(p, t_vpn, csr, NULL, "dNSName *.example.org, which is no host name");
    csr = request(p, "CN=x", "subjectAltName = DNS:evil example");
    REFUSED(p, t_vpn, csr, NULL, "which is no host name");
    csr = request(p, "CN=x", "subjectAltName = email:admin");
    REFUSED(p, refuse, csr, NULL, "rfc822Name admin, which is no e-mail address");
    csr = request(p, "CN=x", "subjectAltName = DNS:Host1.Example.ORG.");
    assert_null(refusal(p, t_vpn, csr, NULL, &r));
    assert_string_equal(APR_ARRAY_IDX(r.sans, 0, scep_template_name_t).value,
                        "host1.example.org");
    /* nothing at all left */
    csr = request(p, "O=Evil Corp", NULL);
    REFUSED(p, drop, csr, NULL, "name nobody");
}

/* ---- what certificates hold ------------------------------------------------------------- */

static void test_mdm_device_certificate(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile;
    scep_csr_t *csr = request(p, "CN=John's iPhone",
                              "subjectAltName = @alt\n[alt]\nemail.1 = john@example.org\n"
                              "otherName.1 = msUPN;UTF8:john@corp.example.org\n"
                              "URI.1 = " SID_URI);
    X509 *x;
    int critical = -1, i;
    const char *sans;
    const X509_EXTENSION *sid;
    const ASN1_OCTET_STRING *data;
    static const char expected_sid[] = "S-1-5-21-1004336348-1177238915-682003330-512";
    unsigned char want[128];
    size_t n = strlen(expected_sid);

    scep_profile_defaults(&profile, p);
    profile.template_ = mdm_template(p);
    x = issue(p, &profile, csr, NULL);
    assert_string_equal(subject_of(p, x), "CN=John's iPhone");
    sans = sans_of(p, x, &critical);
    assert_string_equal(sans, "rfc822Name:john@example.org\nupn:john@corp.example.org\n"
                        "URI:" SID_URI "\n");
    assert_int_equal(critical, 0);
    /* 1.3.6.1.4.1.311.25.2: SEQUENCE { [0] { OID ...25.2.1, [0] { OCTET STRING sid } } } */
    i = sid_extension_at(x);
    assert_true(i >= 0);
    sid = X509_get_ext(x, i);
    assert_int_equal(X509_EXTENSION_get_critical(sid), 0);
    data = X509_EXTENSION_get_data((X509_EXTENSION *)sid);
    want[0] = 0x30;
    want[1] = (unsigned char)(n + 18);
    want[2] = 0xa0;
    want[3] = (unsigned char)(n + 16);
    memcpy(want + 4, "\x06\x0a\x2b\x06\x01\x04\x01\x82\x37\x19\x02\x01", 12);
    want[16] = 0xa0;
    want[17] = (unsigned char)(n + 2);
    want[18] = 0x04;
    want[19] = (unsigned char)n;
    memcpy(want + 20, expected_sid, n);
    assert_int_equal(ASN1_STRING_length(data), (int)n + 20);
    assert_memory_equal(ASN1_STRING_get0_data(data), want, n + 20);

    /* ScepTemplateSID off: the URI stays, the extension does not come */
    ((scep_template_t *)profile.template_)->sid = 0;
    x = issue(p, &profile, csr, NULL);
    assert_int_equal(sid_extension_at(x), -1);
    /* a SID URI that names no SID is refused */
    ((scep_template_t *)profile.template_)->sid = 1;
    csr = request(p, "CN=x", "subjectAltName = @alt\n[alt]\nURI.1 = "
                  SCEP_TEMPLATE_SID_PREFIX "S-1-5-x");
    REFUSED(p, profile.template_, csr, NULL, "names no SID");
}

static void test_fixed_and_validator_values(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *t = scep_template_new(p);
    scep_identity_t *id = identity(p, SCEP_IDENTITY_USER, SCEP_WHERE_RFC822_NAME,
                                   "jane@example.org");
    scep_identity_value_t *v;
    scep_profile_t profile;
    scep_csr_t *csr = request(p, "CN=Jane", "subjectAltName = email:jane@example.org");
    X509 *x;

    rule(t, p, 0, "CN validator");
    rule(t, p, 0, "O fixed Example");
    rule(t, p, 0, "C fixed DE");
    rule(t, p, 1, "rfc822Name identity");
    rule(t, p, 1, "URI validator");
    id->supplied = apr_array_make(p, 2, sizeof(scep_identity_value_t));
    v = apr_array_push(id->supplied);
    v->field = "cn";
    v->value = "Jane Doe";
    v = apr_array_push(id->supplied);
    v->field = "URI";
    v->value = SID_URI;
    assert_null(scep_template_set_unlisted(t, "drop"));
    scep_profile_defaults(&profile, p);
    profile.template_ = t;
    x = issue(p, &profile, csr, id);
    assert_string_equal(subject_of(p, x), "C=DE,O=Example,CN=Jane Doe");
    assert_string_equal(sans_of(p, x, NULL), "rfc822Name:jane@example.org\nURI:" SID_URI "\n");
    assert_true(sid_extension_at(x) >= 0);
    /* a validator's value is checked as a request's is */
    v->value = "tag:\x01";
    REFUSED(p, t, csr, id, "validator's URI");
    rule(t, p, 1, "dNSName validator");
    v->field = "dNSName";
    v->value = "*.example.org";
    REFUSED(p, t, csr, id, "validator's dNSName *.example.org is no host name");
}

static void test_identity_without_template(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile;
    scep_identity_t *id = identity(p, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN,
                                   "John's iPhone");
    scep_csr_t *csr = request(p, "CN=John's iPhone\nO=Whatever",
                              "subjectAltName = DNS:evil.example.org,email:x@example.org\n"
                              "basicConstraints = CA:TRUE");
    const apr_array_header_t *dropped;
    const char *why = NULL;
    int critical = -1;
    X509 *x;

    scep_profile_defaults(&profile, p);
    /* ScepSubject csr is no way around it: only the identity, the rest dropped */
    assert_ptr_equal(scep_issue_template(&profile, id), scep_template_identity_only());
    assert_int_equal(scep_issue_certificate(p, ca, &profile, csr, id, NOW, &x, &dropped,
                                            &why), APR_SUCCESS);
    assert_string_equal(subject_of(p, x), "CN=John's iPhone");
    assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
    assert_int_equal(dropped->nelts, 4);
    /* another name where the identity is carried: refused */
    csr = request(p, "CN=Jane's iPhone", NULL);
    REFUSED(p, scep_template_identity_only(), csr, id, "not the authorised identity");
    /* a user carried as a UPN: the UPN alone, the SAN critical under an empty subject */
    id = identity(p, SCEP_IDENTITY_USER, SCEP_WHERE_UPN, "john@corp.example.org");
    csr = request(p, "CN=John Doe",
                  "subjectAltName = otherName:msUPN;UTF8:john@corp.example.org");
    x = issue(p, &profile, csr, id);
    assert_string_equal(subject_of(p, x), "");
    assert_string_equal(sans_of(p, x, &critical), "upn:john@corp.example.org\n");
    assert_int_equal(critical, 1);
    /* a second identity in another SAN of the same kind is refused by a template */
    csr = request(p, "CN=John Doe",
                  "subjectAltName = otherName:msUPN;UTF8:admin@corp.example.org");
    REFUSED(p, preset(p, "tls-client"), csr, id, "not the authorised identity");
}

static void test_host_with_template(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile;
    scep_identity_t *id = identity(p, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES,
                                   "gw1.example.net");
    scep_csr_t *csr = request(p, "CN=gw1", "subjectAltName = DNS:gw1.example.net");
    X509 *x;

    scep_profile_defaults(&profile, p);
    profile.template_ = preset(p, "vpn");
    x = issue(p, &profile, csr, id);
    assert_string_equal(subject_of(p, x), "CN=gw1");
    assert_string_equal(sans_of(p, x, NULL), "dNSName:gw1.example.net\n");
    /* the registration's names in another spelling are the same names */
    id->ips = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(id->ips, const char *) = "2001:db8::1";
    csr = request(p, "CN=GW1",
                  "subjectAltName = DNS:GW1.Example.NET.,IP:2001:DB8:0:0:0:0:0:1");
    x = issue(p, &profile, csr, id);
    assert_string_equal(subject_of(p, x), "CN=GW1");
    assert_string_equal(sans_of(p, x, NULL), "dNSName:gw1.example.net\nip\n");
    csr = request(p, "CN=gw1", "subjectAltName = IP:2001:db8::2");
    REFUSED(p, profile.template_, csr, id,
            "iPAddress 2001:0db8:0000:0000:0000:0000:0000:0002, which is not the authorised");
    csr = request(p, "CN=gw1", "subjectAltName = DNS:gw1.example.net,DNS:gw2.example.net");
    REFUSED(p, profile.template_, csr, id, "gw2.example.net");
    csr = request(p, "CN=gw2", NULL);
    REFUSED(p, profile.template_, csr, id, "CN=gw2");
    /* without a template: today's forced names, the registered address included */
    profile.template_ = NULL;
    csr = request(p, "CN=anything\nO=Evil", "subjectAltName = DNS:other.example.net");
    x = issue(p, &profile, csr, id);
    assert_string_equal(subject_of(p, x), "CN=gw1.example.net");
    assert_string_equal(sans_of(p, x, NULL), "dNSName:gw1.example.net\nip\n");
}

/* ScepSubject csr / cn as templates: the certificates of before. */
static void test_copying_templates(void **state)
{
    apr_pool_t *p = *state;
    scep_profile_t profile;
    scep_csr_t *csr = request(p, "O=Org\nCN=dev.example.org", "subjectAltName = DNS:a.example");
    X509 *x;

    scep_profile_defaults(&profile, p);
    x = issue(p, &profile, csr, NULL);
    assert_string_equal(subject_of(p, x), "CN=dev.example.org,O=Org");
    assert_string_equal(sans_of(p, x, NULL), "dNSName:a.example\n");
    profile.template_ = scep_template_builtin(SCEP_SUBJECT_CN_ONLY);
    x = issue(p, &profile, csr, NULL);
    assert_string_equal(subject_of(p, x), "CN=dev.example.org");
    assert_string_equal(sans_of(p, x, NULL), "dNSName:a.example\n");
}

/* Review of issue 17: no preset lets the request choose the account Windows maps the
 * certificate to; at a user endpoint every user place must name the registered user
 * (Alice's challenge gave the administrator's e-mail, UPN and SID before). */
static void test_request_cannot_choose_the_account(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *t = preset(p, "tls-client");
    scep_identity_t *alice = identity(p, SCEP_IDENTITY_USER, SCEP_WHERE_UPN,
                                      "alice@example.org");
    scep_csr_t *csr;

    alice->fqdn = "user:alice@example.org";
    csr = request(p, "CN=Any Device", "subjectAltName = @alt\n[alt]\n"
                  "otherName.1 = msUPN;UTF8:administrator@example.org\n"
                  "URI.1 = " SID_URI);
    REFUSED(p, t, csr, NULL, "does not take from requests");
    t = mdm_template(p);
    csr = request(p, "CN=Alice", "subjectAltName = @alt\n[alt]\n"
                  "otherName.1 = msUPN;UTF8:alice@example.org\n"
                  "email.1 = administrator@example.org");
    REFUSED(p, t, csr, alice, "not the authorised identity");
    csr = request(p, "CN=Alice", "subjectAltName = @alt\n[alt]\n"
                  "otherName.1 = msUPN;UTF8:alice@example.org\n"
                  "email.1 = alice@EXAMPLE.org");
    assert_null(refusal(p, t, csr, alice, NULL));
}

/* A forwarding gateway refuses what the template would drop. */
static void test_forward_check_with_template(void **state)
{
    apr_pool_t *p = *state;
    scep_template_t *t = mdm_template(p);
    scep_identity_t *id = identity(p, SCEP_IDENTITY_DEVICE_NAME, SCEP_WHERE_CN,
                                   "John's iPhone");
    const char *what = NULL;
    scep_csr_t *csr;

    assert_null(scep_template_set_unlisted(t, "drop"));
    csr = request(p, "CN=John's iPhone", "subjectAltName = @alt\n[alt]\nURI.1 = " SID_URI);
    assert_int_equal(scep_policy_forward_check(p, t, id, csr, &what), SCEP_POLICY_FWD_OK);
    csr = request(p, "CN=John's iPhone\nO=Evil", NULL);
    assert_int_equal(scep_policy_forward_check(p, t, id, csr, &what),
                     SCEP_POLICY_FWD_TEMPLATE);
    assert_non_null(strstr(what, "O=Evil"));
    assert_non_null(strstr(what, "forwarding gateway"));
    csr = request(p, "CN=Jane's iPhone", NULL);
    assert_int_equal(scep_policy_forward_check(p, t, id, csr, &what),
                     SCEP_POLICY_FWD_TEMPLATE);
    csr = request(p, "CN=John's iPhone", "basicConstraints = CA:TRUE");
    assert_int_equal(scep_policy_forward_check(p, t, id, csr, &what), SCEP_POLICY_FWD_NEVER);
    /* a device without a template: its identity where it is carried, nothing more */
    csr = request(p, "CN=John's iPhone", NULL);
    assert_int_equal(scep_policy_forward_check(p, NULL, id, csr, &what), SCEP_POLICY_FWD_OK);
    csr = request(p, "CN=John's iPhone", "subjectAltName = email:john@example.org");
    assert_int_equal(scep_policy_forward_check(p, NULL, id, csr, &what),
                     SCEP_POLICY_FWD_TEMPLATE);
    assert_non_null(strstr(what, "rfc822Name john@example.org"));
    /* a host's serialNumber at a template: only the registered one */
    t = scep_template_new(p);
    rule(t, p, 0, "CN request");
    rule(t, p, 0, "serialNumber request");
    id = identity(p, SCEP_IDENTITY_HOST, SCEP_WHERE_HOST_RULES, "r1.example.net");
    id->serial_number = "FTX1234";
    csr = request(p, "CN=r1\nserialNumber=ftx1234", NULL);
    assert_int_equal(scep_policy_forward_check(p, t, id, csr, &what), SCEP_POLICY_FWD_OK);
    csr = request(p, "CN=r1\nserialNumber=FTX9999", NULL);
    assert_int_equal(scep_policy_forward_check(p, t, id, csr, &what),
                     SCEP_POLICY_FWD_TEMPLATE);
    assert_non_null(strstr(what, "not the authorised identity"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_problems),
        cmocka_unit_test_setup(test_configuration_errors, fresh_pool),
        cmocka_unit_test_setup(test_own_rules_replace_the_presets, fresh_pool),
        cmocka_unit_test_setup(test_ca_powers_refused_or_dropped, fresh_pool),
        cmocka_unit_test_setup(test_smuggled_names, fresh_pool),
        cmocka_unit_test_setup(test_mdm_device_certificate, fresh_pool),
        cmocka_unit_test_setup(test_fixed_and_validator_values, fresh_pool),
        cmocka_unit_test_setup(test_identity_without_template, fresh_pool),
        cmocka_unit_test_setup(test_host_with_template, fresh_pool),
        cmocka_unit_test_setup(test_copying_templates, fresh_pool),
        cmocka_unit_test_setup(test_forward_check_with_template, fresh_pool),
        cmocka_unit_test_setup(test_request_cannot_choose_the_account, fresh_pool),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
