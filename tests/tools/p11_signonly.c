/* SPDX-License-Identifier: Apache-2.0 */
/* Test tool: an RSA-2048 key pair generated inside a PKCS#11 token with its private half
 * allowed to sign but not to decrypt (CKA_DECRYPT false), as HSM keys made for signing
 * are.  pkcs11-tool cannot make one: SoftHSM2 lets a private key decrypt unless told
 * otherwise, and pkcs11-tool only ever adds usages.
 *
 *   p11_signonly MODULE TOKEN-LABEL PIN-FILE KEY-LABEL ID-BYTE
 *
 * Built by t_pkcs11.sh with the PKCS#11 header of p11-kit (libp11-kit-dev). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static int failed(const char *what, CK_RV rv)
{
    fprintf(stderr, "p11_signonly: %s: CKR 0x%lx\n", what, (unsigned long)rv);
    return 1;
}

/* The slot whose token's label (blank-padded to 32) is `label`. */
static int find_slot(CK_FUNCTION_LIST_PTR f, const char *label, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64, i;
    size_t len = strlen(label);

    if (len > 32 || f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        size_t j;
        int same;

        if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK) {
            continue;
        }
        same = memcmp(info.label, label, len) == 0;
        for (j = len; same && j < sizeof(info.label); j++) {
            same = info.label[j] == ' ';
        }
        if (same) {
            *out = slots[i];
            return 1;
        }
    }
    return 0;
}

static int read_pin(const char *path, char *pin, size_t size)
{
    FILE *file = fopen(path, "r");
    int ok = file && fgets(pin, (int)size, file) != NULL;

    if (file) {
        fclose(file);
    }
    pin[strcspn(pin, "\r\n")] = '\0';
    return ok && pin[0];
}

int main(int argc, char **argv)
{
    CK_C_GetFunctionList get_list;
    CK_FUNCTION_LIST_PTR f;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE pub, priv;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = 2048;
    CK_BYTE exponent[] = { 1, 0, 1 }, id;
    CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
    char pin[128];
    void *module;
    CK_RV rv;

    if (argc != 6) {
        fprintf(stderr, "usage: p11_signonly MODULE TOKEN-LABEL PIN-FILE KEY-LABEL ID-BYTE\n");
        return 2;
    }
    id = (CK_BYTE)strtoul(argv[5], NULL, 16);
    {
        CK_ATTRIBUTE pub_tmpl[] = {
            { CKA_TOKEN, &yes, sizeof(yes) }, { CKA_VERIFY, &yes, sizeof(yes) },
            { CKA_ENCRYPT, &no, sizeof(no) }, { CKA_MODULUS_BITS, &bits, sizeof(bits) },
            { CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent) },
            { CKA_LABEL, argv[4], strlen(argv[4]) }, { CKA_ID, &id, 1 },
        };
        CK_ATTRIBUTE priv_tmpl[] = {
            { CKA_TOKEN, &yes, sizeof(yes) }, { CKA_PRIVATE, &yes, sizeof(yes) },
            { CKA_SENSITIVE, &yes, sizeof(yes) }, { CKA_EXTRACTABLE, &no, sizeof(no) },
            { CKA_SIGN, &yes, sizeof(yes) }, { CKA_DECRYPT, &no, sizeof(no) },
            { CKA_UNWRAP, &no, sizeof(no) }, { CKA_LABEL, argv[4], strlen(argv[4]) },
            { CKA_ID, &id, 1 },
        };

        if (!(module = dlopen(argv[1], RTLD_NOW))
            || !(get_list = (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList"))
            || get_list(&f) != CKR_OK) {
            fprintf(stderr, "p11_signonly: cannot load %s\n", argv[1]);
            return 1;
        }
        if ((rv = f->C_Initialize(NULL)) != CKR_OK) {
            return failed("C_Initialize", rv);
        }
        if (!find_slot(f, argv[2], &slot)) {
            fprintf(stderr, "p11_signonly: no token labelled %s\n", argv[2]);
            return 1;
        }
        if (!read_pin(argv[3], pin, sizeof(pin))) {
            fprintf(stderr, "p11_signonly: no PIN in %s\n", argv[3]);
            return 1;
        }
        if ((rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                   &session)) != CKR_OK) {
            return failed("C_OpenSession", rv);
        }
        rv = f->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        memset(pin, 0, sizeof(pin));
        if (rv != CKR_OK) {
            return failed("C_Login", rv);
        }
        rv = f->C_GenerateKeyPair(session, &mech, pub_tmpl,
                                  sizeof(pub_tmpl) / sizeof(pub_tmpl[0]), priv_tmpl,
                                  sizeof(priv_tmpl) / sizeof(priv_tmpl[0]), &pub, &priv);
        f->C_Logout(session);
        f->C_CloseSession(session);
        f->C_Finalize(NULL);
        return rv == CKR_OK ? 0 : failed("C_GenerateKeyPair", rv);
    }
}
