/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the profile's table of settings: every member of scep_profile_t has a
 * row (a member without one would silently never merge nor take its default), and
 * copying by setting bits gives a section its own settings over what it inherits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>

#include "scep_profile.h"

#if defined(__has_builtin)
#if __has_builtin(__builtin_clear_padding)
#define HAVE_CLEAR_PADDING 1            /* GCC 11 and later */
#endif
#endif

static apr_pool_t *pool;

/* Fills each row's bytes of `profile` with `byte` plus the row's index, so that every
 * member holds a value that tells whose it is. */
static void fill_rows(scep_profile_t *profile, int byte)
{
    const scep_profile_setting_t *rows;
    apr_size_t n, i;

    rows = scep_profile_settings(&n);
    for (i = 0; i < n; i++) {
        memset((char *)profile + rows[i].offset, (byte + (int)i) & 0xff, rows[i].size);
    }
}

static int row_holds(const scep_profile_t *profile, const scep_profile_setting_t *row,
                     int byte)
{
    const unsigned char *p = (const unsigned char *)profile + row->offset;
    apr_size_t k;

    for (k = 0; k < row->size; k++) {
        if (p[k] != (unsigned char)byte) {
            return 0;
        }
    }
    return 1;
}

static int by_offset(const void *a, const void *b)
{
    const scep_profile_setting_t *x = a, *y = b;

    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

#define MAX_ROWS 64

/* The rows in the order of their offsets, into `sorted`; their number, 0 on failure. */
static apr_size_t sorted_rows(scep_profile_setting_t sorted[MAX_ROWS])
{
    const scep_profile_setting_t *rows;
    apr_size_t n;

    rows = scep_profile_settings(&n);
    if (n == 0 || n > MAX_ROWS) {
        fail_msg("%lu rows: none, or more than this test holds", (unsigned long)n);
        return 0;
    }
    memcpy(sorted, rows, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_offset);
    return n;
}

/* Rows lie inside the struct and never overlap: each member is one row's. */
static void test_rows_are_distinct_members(void **state)
{
    scep_profile_setting_t sorted[MAX_ROWS];
    apr_size_t n = sorted_rows(sorted), i;

    (void)state;
    for (i = 0; i < n; i++) {
        assert_true(sorted[i].size > 0);
        assert_true(sorted[i].offset + sorted[i].size <= sizeof(scep_profile_t));
        if (i > 0 && sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset) {
            fail_msg("rows %s and %s overlap", sorted[i - 1].member, sorted[i].member);
        }
    }
}

/* The point of the table: a member added to scep_profile_t without a row fails here.
 * The compiler tells padding from members: every byte set, padding cleared, each row's
 * bytes zeroed; what is left belongs to a member without a row. */
static void test_every_member_has_a_row(void **state)
{
#ifdef HAVE_CLEAR_PADDING
    const scep_profile_setting_t *rows;
    scep_profile_t profile;
    const unsigned char *bytes = (const unsigned char *)&profile;
    apr_size_t n, i;

    (void)state;
    rows = scep_profile_settings(&n);
    memset(&profile, 0xff, sizeof(profile));
    __builtin_clear_padding(&profile);
    for (i = 0; i < n; i++) {
        memset((char *)&profile + rows[i].offset, 0, rows[i].size);
    }
    for (i = 0; i < sizeof(profile); i++) {
        if (bytes[i]) {
            fail_msg("byte %lu of scep_profile_t belongs to a member without a row in "
                     "scep_profile_settings", (unsigned long)i);
        }
    }
#else
    (void)state;
    skip();             /* test_rows_cover_the_struct still runs */
#endif
}

/* The same without the compiler's help (clang): the rows cover the struct but for the
 * gaps that rounding up to each member's alignment leaves. */
static void test_rows_cover_the_struct(void **state)
{
    scep_profile_setting_t sorted[MAX_ROWS];
    apr_size_t n = sorted_rows(sorted), i, end = 0;

    (void)state;
    for (i = 0; i < n; i++) {
        /* padding only rounds up to a member's alignment, which for the scalar members
         * of a profile is their size */
        apr_size_t align = sorted[i].size < _Alignof(max_align_t) ? sorted[i].size
                                                                  : _Alignof(max_align_t);

        if (sorted[i].offset != (end + align - 1) / align * align) {
            fail_msg("bytes %lu to %lu of scep_profile_t, before %s, are no row's",
                     (unsigned long)end, (unsigned long)sorted[i].offset, sorted[i].member);
        }
        end = sorted[i].offset + sorted[i].size;
    }
    if (sizeof(scep_profile_t) - end >= _Alignof(scep_profile_t)) {
        fail_msg("the last %lu bytes of scep_profile_t are no row's",
                 (unsigned long)(sizeof(scep_profile_t) - end));
    }
}

/* Every setting bit up to the highest has rows, and `upstream`, which no directive
 * sets, is accounted for with none. */
static void test_every_setting_has_rows(void **state)
{
    const scep_profile_setting_t *rows;
    unsigned int all = 0;
    apr_size_t n, i;
    int upstream = 0;

    (void)state;
    rows = scep_profile_settings(&n);
    for (i = 0; i < n; i++) {
        all |= rows[i].set;
        if (rows[i].set == 0) {
            assert_string_equal(rows[i].member, "upstream");
            assert_int_equal(rows[i].offset, offsetof(scep_profile_t, upstream));
            upstream = 1;
        }
    }
    assert_true(upstream);
    assert_int_equal(all & (all + 1), 0);         /* bits 0 to the highest, no hole */
    assert_true(all & SCEP_PROFILE_SET_FAILURE_DETAIL);
}

/* The one row of `set`, of one of the sizes the glue's setter writes. */
static void check_setter_member(unsigned int set, apr_size_t size_a, apr_size_t size_b)
{
    const scep_profile_setting_t *rows, *row = scep_profile_setting(set);
    apr_size_t n, k;

    assert_non_null(row);
    assert_true(row->size == size_a || row->size == size_b);
    rows = scep_profile_settings(&n);
    for (k = 0; k < n; k++) {
        assert_true(&rows[k] == row || rows[k].set != set);
    }
}

/* The glue's setters find a flag's or a number's member by its setting: an int for a
 * flag, an int or an apr_int64_t (or an apr_size_t of its width) for a number. */
static void test_setters_find_their_member(void **state)
{
    static const unsigned int flags[] = {
        SCEP_PROFILE_SET_LEGACY, SCEP_PROFILE_SET_NO_CHALLENGE,
        SCEP_PROFILE_SET_CHECK_ADDRESS, SCEP_PROFILE_SET_RENEWAL_CHALLENGE,
        SCEP_PROFILE_SET_RENEWAL_REVOKE, SCEP_PROFILE_SET_APPROVAL,
        SCEP_PROFILE_SET_FAILURE_DETAIL
    };
    static const unsigned int numbers[] = {
        SCEP_PROFILE_SET_VALIDITY, SCEP_PROFILE_SET_MIN_KEY, SCEP_PROFILE_SET_MAX_MESSAGE,
        SCEP_PROFILE_SET_TXN_WINDOW, SCEP_PROFILE_SET_RENEWAL_GRACE,
        SCEP_PROFILE_SET_PENDING_TIMEOUT, SCEP_PROFILE_SET_CRL_VALIDITY
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        check_setter_member(flags[i], sizeof(int), sizeof(int));
    }
    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        check_setter_member(numbers[i], sizeof(int), sizeof(apr_int64_t));
    }
    assert_int_equal(scep_profile_setting(SCEP_PROFILE_SET_CRL_VALIDITY)->offset,
                     offsetof(scep_profile_t, crl_validity));
    assert_null(scep_profile_setting(1u << 31));
}

/* For each setting alone: its rows take the section's value, every other member keeps
 * what the section inherits (base or defaults). */
static void test_copy_takes_set_keeps_unset(void **state)
{
    const scep_profile_setting_t *rows;
    scep_profile_t own, into;
    apr_size_t n, i, k;

    (void)state;
    rows = scep_profile_settings(&n);
    fill_rows(&own, 0x10);
    for (i = 0; i < n; i++) {
        unsigned int set = rows[i].set;

        if (!set) {
            continue;
        }
        fill_rows(&into, 0x80);
        scep_profile_copy_set(&into, &own, set);
        for (k = 0; k < n; k++) {
            int want = rows[k].set == set ? 0x10 + (int)k : 0x80 + (int)k;

            if (!row_holds(&into, &rows[k], want & 0xff)) {
                fail_msg("setting of %s: %s holds the wrong one's value", rows[i].member,
                         rows[k].member);
            }
        }
    }
    /* nothing set: all inherited; everything set: all own, but upstream */
    fill_rows(&into, 0x80);
    scep_profile_copy_set(&into, &own, 0);
    for (k = 0; k < n; k++) {
        assert_true(row_holds(&into, &rows[k], (0x80 + (int)k) & 0xff));
    }
    scep_profile_copy_set(&into, &own, ~0u);
    for (k = 0; k < n; k++) {
        assert_true(row_holds(&into, &rows[k],
                              (rows[k].set ? 0x10 + (int)k : 0x80 + (int)k) & 0xff));
    }
}

/* What merge and the effective profile do with real values: a section's own settings,
 * an explicit "none" (NULL) included, win; what it did not set is inherited. */
static void test_merge_and_effective(void **state)
{
    static const char *const none[] = { "none" };
    static const char *const server_auth[] = { "serverAuth" };
    scep_profile_t defaults, base, section, merged, effective;
    unsigned int base_set, section_set;

    (void)state;
    scep_profile_defaults(&defaults, pool);
    assert_non_null(defaults.eku_der);                     /* clientAuth */

    /* the enclosing section: a validity and serverAuth */
    memset(&base, 0, sizeof(base));
    base.validity_days = 30;
    assert_null(scep_profile_set_eku(&base, pool, 1, server_auth));
    base_set = SCEP_PROFILE_SET_VALIDITY | SCEP_PROFILE_SET_EKU;

    /* the inner one: no EKU extension at all, a lockout */
    memset(&section, 0, sizeof(section));
    assert_null(scep_profile_set_eku(&section, pool, 1, none));
    section.registrations.lockout_failures = 3;
    section.registrations.lockout_seconds = 600;
    section.registrations.lockout_shared_failures = 30;
    section_set = SCEP_PROFILE_SET_EKU | SCEP_PROFILE_SET_LOCKOUT;

    /* merge: the base, then what the inner section set */
    merged = base;
    scep_profile_copy_set(&merged, &section, section_set);
    /* effective: the defaults, then what the merged sections set */
    effective = defaults;
    scep_profile_copy_set(&effective, &merged, base_set | section_set);

    assert_int_equal(effective.validity_days, 30);         /* inherited from the base */
    assert_null(effective.eku_der);                        /* "none" overrides both */
    assert_int_equal(effective.eku_der_len, 0);
    assert_int_equal(effective.registrations.lockout_failures, 3);
    assert_int_equal(effective.registrations.lockout_seconds, 600);
    assert_int_equal(effective.registrations.lockout_shared_failures, 30);
    /* not set anywhere: the defaults */
    assert_int_equal(effective.min_key_bits, defaults.min_key_bits);
    assert_int_equal(effective.key_usage, defaults.key_usage);
    assert_int_equal(effective.max_message_size, defaults.max_message_size);
    assert_int_equal(effective.registrations.transaction_window,
                     defaults.registrations.transaction_window);
    assert_int_equal(effective.crl_validity, defaults.crl_validity);
    assert_null(effective.challenge_sha256);

    /* an inner section that sets nothing about EKU keeps the base's serverAuth */
    merged = base;
    scep_profile_copy_set(&merged, &section, SCEP_PROFILE_SET_LOCKOUT);
    effective = defaults;
    scep_profile_copy_set(&effective, &merged, base_set | SCEP_PROFILE_SET_LOCKOUT);
    assert_int_equal(effective.eku_der_len, base.eku_der_len);
    assert_memory_equal(effective.eku_der, base.eku_der, base.eku_der_len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_distinct_members),
        cmocka_unit_test(test_every_member_has_a_row),
        cmocka_unit_test(test_rows_cover_the_struct),
        cmocka_unit_test(test_every_setting_has_rows),
        cmocka_unit_test(test_setters_find_their_member),
        cmocka_unit_test(test_copy_takes_set_keeps_unset),
        cmocka_unit_test(test_merge_and_effective),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
