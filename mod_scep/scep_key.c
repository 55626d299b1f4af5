/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted PEM key files and ScepPassPhraseDialog: the two dialogs (the terminal, a
 * program's output), the one-time PEM passphrase callback, and the process-wide cache of
 * keys already decrypted.  Runs at startup only, in the parent, single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <apr_hash.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "scep_key.h"
#include "scep_util.h"
#include "scep_util_own.h"

/* A passphrase longer than this is refused rather than cut: PEM's own limit is 1024. */
#define PASSPHRASE_MAX 1024
/* How long a dialog may take: a program that hangs must not hold httpd's start forever,
 * and a person at the terminal has two minutes. */
#define EXEC_SECONDS 60
#define TERMINAL_SECONDS 120

#define CACHE_KEY "mod_scep: decrypted keys"

struct scep_key_cache_t {
    apr_pool_t *pool;
    apr_hash_t *by_path;            /* path -> cached_key_t */
    apr_hash_t *secrets;            /* name -> NUL-terminated secret */
    apr_hash_t *fds;                /* name -> int, a descriptor */
};

/* A decrypted key, as PKCS#8 DER, and the identity of the file it came from: a changed
 * file is asked for again. */
typedef struct cached_key_t {
    dev_t dev;
    ino_t ino;
    time_t mtime;
    off_t size;
    unsigned char *der;
    apr_size_t der_len;
} cached_key_t;

const char *scep_key_dialog_parse(apr_pool_t *p, const char *arg, scep_key_dialog_t *out)
{
    if (strcmp(arg, "builtin") == 0) {
        out->kind = SCEP_KEY_DIALOG_BUILTIN;
        out->program = NULL;
        return NULL;
    }
    if (strncmp(arg, "exec:", 5) == 0 && arg[5] == '/') {
        struct stat st;

        if (stat(arg + 5, &st) != 0 || !S_ISREG(st.st_mode) || access(arg + 5, X_OK) != 0) {
            return apr_psprintf(p, "'%s' is not an executable file", arg + 5);
        }
        out->kind = SCEP_KEY_DIALOG_EXEC;
        out->program = apr_pstrdup(p, arg + 5);
        return NULL;
    }
    return apr_psprintf(p, "'%s': builtin or exec:/absolute/path/to/program", arg);
}

scep_key_cache_t *scep_key_cache_get(apr_pool_t *process_pool)
{
    void *found = NULL;
    scep_key_cache_t *cache;

    apr_pool_userdata_get(&found, CACHE_KEY, process_pool);
    if (found) {
        return found;
    }
    cache = apr_pcalloc(process_pool, sizeof(*cache));
    cache->pool = process_pool;
    cache->by_path = apr_hash_make(process_pool);
    cache->secrets = apr_hash_make(process_pool);
    cache->fds = apr_hash_make(process_pool);
    apr_pool_userdata_set(cache, CACHE_KEY, apr_pool_cleanup_null, process_pool);
    return cache;
}

const char *scep_key_cache_secret(scep_key_cache_t *cache, const char *name)
{
    return cache ? apr_hash_get(cache->secrets, name, APR_HASH_KEY_STRING) : NULL;
}

void scep_key_cache_secret_put(scep_key_cache_t *cache, const char *name, const char *value)
{
    char *old;

    if (!cache) {
        return;
    }
    if ((old = apr_hash_get(cache->secrets, name, APR_HASH_KEY_STRING)) != NULL) {
        apr_size_t room = strlen(old);

        OPENSSL_cleanse(old, room);
        /* Kept again at every reopen of a child's session, which a client's failing
         * requests can cause: the same secret goes where it was, so the process pool
         * grows only when the secret itself grows. */
        if (value && strlen(value) <= room) {
            memcpy(old, value, strlen(value) + 1);
            return;
        }
        apr_hash_set(cache->secrets, name, APR_HASH_KEY_STRING,
                     value ? apr_pstrdup(cache->pool, value) : NULL);
        return;
    }
    if (value) {
        apr_hash_set(cache->secrets, apr_pstrdup(cache->pool, name), APR_HASH_KEY_STRING,
                     apr_pstrdup(cache->pool, value));
    }
}

int scep_key_cache_fd(scep_key_cache_t *cache, const char *name)
{
    const int *fd = cache ? apr_hash_get(cache->fds, name, APR_HASH_KEY_STRING) : NULL;

    return fd ? *fd : -1;
}

void scep_key_cache_fd_put(scep_key_cache_t *cache, const char *name, int fd)
{
    int *kept;

    if (cache) {
        kept = apr_palloc(cache->pool, sizeof(*kept));
        *kept = fd;
        apr_hash_set(cache->fds, apr_pstrdup(cache->pool, name), APR_HASH_KEY_STRING, kept);
    }
}

static cached_key_t *cache_find(scep_key_cache_t *cache, const char *path,
                               const struct stat *st)
{
    cached_key_t *c;

    if (!cache || !(c = apr_hash_get(cache->by_path, path, APR_HASH_KEY_STRING))) {
        return NULL;
    }
    if (c->dev != st->st_dev || c->ino != st->st_ino || c->mtime != st->st_mtime
        || c->size != st->st_size) {
        return NULL;
    }
    return c;
}

static void cache_put(scep_key_cache_t *cache, const char *path, const struct stat *st,
                      EVP_PKEY *key)
{
    cached_key_t *c, *old;
    unsigned char *der = NULL;
    int len;

    if (!cache || (len = i2d_PrivateKey(key, &der)) <= 0) {
        ERR_clear_error();
        return;
    }
    if ((old = apr_hash_get(cache->by_path, path, APR_HASH_KEY_STRING)) != NULL) {
        OPENSSL_cleanse(old->der, old->der_len);
    }
    c = apr_pcalloc(cache->pool, sizeof(*c));
    c->dev = st->st_dev;
    c->ino = st->st_ino;
    c->mtime = st->st_mtime;
    c->size = st->st_size;
    c->der = apr_pmemdup(cache->pool, der, (apr_size_t)len);
    c->der_len = (apr_size_t)len;
    OPENSSL_clear_free(der, (size_t)len);
    apr_hash_set(cache->by_path, apr_pstrdup(cache->pool, path), APR_HASH_KEY_STRING, c);
}

static long seconds_left(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(deadline->tv_sec - now.tv_sec);
}

/* Reads one line (without its end) into buf, within `seconds`; a line that does not fit
 * is an error, never a shorter passphrase. */
static const char *read_line(apr_pool_t *p, int fd, int seconds, int stop_at_newline,
                             char *buf, size_t size, size_t *len)
{
    struct timespec deadline;
    struct pollfd pfd;
    ssize_t n;
    long left;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += seconds;
    *len = 0;
    for (;;) {
        if ((left = seconds_left(&deadline)) <= 0) {
            return apr_psprintf(p, "no answer within %d seconds", seconds);
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(left * 1000)) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return apr_psprintf(p, "cannot wait for the answer: %s", strerror(errno));
        }
        if (!pfd.revents) {
            continue;
        }
        if (*len == size) {
            return apr_psprintf(p, "the answer is longer than %d bytes",
                                (int)size - 1);
        }
        n = read(fd, buf + *len, size - *len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return apr_psprintf(p, "cannot read the answer: %s", strerror(errno));
        }
        if (n == 0) {
            break;
        }
        *len += (size_t)n;
        if (stop_at_newline && memchr(buf, '\n', *len)) {
            break;
        }
    }
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r')) {
        (*len)--;
    }
    if (memchr(buf, '\n', *len)) {
        return "the answer has more than one line";
    }
    if (*len == 0) {
        return "the answer is empty";
    }
    if (*len >= size) {
        return apr_psprintf(p, "the answer is longer than %d bytes", (int)size - 1);
    }
    return NULL;
}

static void close_from_3(void)
{
    long max = sysconf(_SC_OPEN_MAX);
    int fd;

    if (max < 0 || max > 65536) {
        max = 65536;
    }
    for (fd = 3; fd < max; fd++) {
        close(fd);
    }
}

/* Waits for the program (after it closed its output), killing it when it outlives the
 * deadline: a dialog never holds the start forever. */
static const char *reap(apr_pool_t *p, pid_t pid, int seconds)
{
    int status = 0, i;
    pid_t got = 0;

    for (i = 0; i < seconds * 10 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++) {
        usleep(100000);
    }
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return apr_psprintf(p, "did not end within %d seconds", seconds);
    }
    if (got < 0) {
        return apr_psprintf(p, "cannot be waited for: %s", strerror(errno));
    }
    if (WIFSIGNALED(status)) {
        return apr_psprintf(p, "was killed by signal %d", WTERMSIG(status));
    }
    if (WEXITSTATUS(status) != 0) {
        return apr_psprintf(p, "exited with status %d", WEXITSTATUS(status));
    }
    return NULL;
}

/* mod_ssl's exec: dialog: the program gets "host:port" and the key type, prints the
 * passphrase on its standard output.  Its standard input is /dev/null and nothing of
 * httpd's (listening sockets, logs) stays open in it. */
static const char *ask_program(apr_pool_t *p, const scep_key_dialog_t *dialog,
                               const char *type, char *buf, size_t size, size_t *len)
{
    int out[2];
    pid_t pid;
    const char *problem, *ended;

    if (pipe(out) != 0) {
        return apr_psprintf(p, "cannot make a pipe: %s", strerror(errno));
    }
    if ((pid = fork()) < 0) {
        close(out[0]);
        close(out[1]);
        return apr_psprintf(p, "cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        char *argv[4];

        if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0) {
            _exit(126);
        }
        close_from_3();
        argv[0] = (char *)dialog->program;
        argv[1] = (char *)(dialog->server_id ? dialog->server_id : "localhost:0");
        argv[2] = (char *)type;
        argv[3] = NULL;
        execv(dialog->program, argv);
        _exit(127);
    }
    close(out[1]);
    problem = read_line(p, out[0], EXEC_SECONDS, 0, buf, size, len);
    close(out[0]);
    ended = reap(p, pid, problem ? 1 : EXEC_SECONDS);
    if (ended) {
        OPENSSL_cleanse(buf, size);
        return apr_pstrcat(p, "the program ", dialog->program, " ", ended, NULL);
    }
    if (problem) {
        OPENSSL_cleanse(buf, size);
        return apr_pstrcat(p, "the program ", dialog->program, ": ", problem, NULL);
    }
    return NULL;
}

/* The builtin dialog: the controlling terminal, without echo. */
static const char *ask_terminal(apr_pool_t *p, const char *prompt, char *buf, size_t size,
                                size_t *len)
{
    struct termios saved, quiet;
    const char *problem;
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);

    if (tty < 0) {
        return apr_psprintf(p, "the builtin dialog needs a terminal, and httpd has none "
                            "(%s): start it from a terminal or use exec:", strerror(errno));
    }
    if (tcgetattr(tty, &saved) != 0) {
        close(tty);
        return "the builtin dialog cannot switch the terminal's echo off";
    }
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    /* echo off (and typeahead dropped) before the prompt shows: an answer typed after
     * seeing it must not be flushed with the typeahead */
    if (tcsetattr(tty, TCSAFLUSH, &quiet) != 0 || write(tty, prompt, strlen(prompt)) < 0) {
        tcsetattr(tty, TCSAFLUSH, &saved);
        close(tty);
        return "the builtin dialog cannot write to the terminal";
    }
    problem = read_line(p, tty, TERMINAL_SECONDS, 1, buf, size, len);
    tcsetattr(tty, TCSAFLUSH, &saved);
    if (write(tty, "\n", 1) < 0) {
        problem = problem ? problem : "the builtin dialog cannot write to the terminal";
    }
    close(tty);
    if (problem) {
        OPENSSL_cleanse(buf, size);
        return apr_pstrcat(p, "the terminal: ", problem, NULL);
    }
    return NULL;
}

const char *scep_key_dialog_ask(apr_pool_t *p, const scep_key_dialog_t *dialog,
                                const char *what, const char *type, char *buf, size_t size,
                                size_t *len)
{
    if (dialog->child) {
        /* a child runs as httpd's user, with no terminal: the parent asked at startup */
        return "is asked only when httpd starts, never by a child process";
    }
    if (dialog->kind == SCEP_KEY_DIALOG_EXEC) {
        return ask_program(p, dialog, type, buf, size, len);
    }
    return ask_terminal(p, apr_psprintf(p, "%s for the mod_scep %s: ", type, what), buf,
                        size, len);
}

/* The key type a dialog program is told: mod_ssl's words where there are some. */
static const char *key_type_word(X509 *cert)
{
    EVP_PKEY *pub = cert ? X509_get0_pubkey(cert) : NULL;
    int id = pub ? EVP_PKEY_get_base_id(pub) : NID_undef;

    switch (id) {
    case EVP_PKEY_RSA:
        return "RSA";
    case EVP_PKEY_EC:
        return "EC";
    case EVP_PKEY_DSA:
        return "DSA";
    case NID_undef:
        return "UNKNOWN";
    default:
        return OBJ_nid2sn(id);
    }
}

/* What the PEM callback needs, and what it found out. */
typedef struct ask_t {
    apr_pool_t *p;
    const scep_key_dialog_t *dialog;
    const char *role;
    const char *path;
    const char *type;
    int asked;                      /* the dialog ran (once at most) */
    const char *problem;            /* why it gave nothing */
} ask_t;

static int pem_passphrase(char *buf, int size, int rwflag, void *u)
{
    ask_t *ask = u;
    char answer[PASSPHRASE_MAX + 1];
    size_t len = 0;

    (void)rwflag;
    if (ask->asked || ask->problem) {
        return -1;                  /* once: a wrong passphrase is never tried again */
    }
    if (!ask->dialog || ask->dialog->kind == SCEP_KEY_DIALOG_NONE) {
        ask->problem = "is encrypted, and no ScepPassPhraseDialog says how to ask for its "
                       "passphrase";
        return -1;
    }
    ask->asked = 1;
    if (ask->dialog->kind == SCEP_KEY_DIALOG_EXEC) {
        ask->problem = ask_program(ask->p, ask->dialog, ask->type, answer, sizeof(answer),
                                   &len);
    }
    else {
        ask->problem = ask_terminal(ask->p, apr_psprintf(ask->p, "Pass phrase for the "
                                                         "mod_scep %s %s: ", ask->role,
                                                         ask->path),
                                    answer, sizeof(answer), &len);
    }
    if (ask->problem) {
        ask->problem = apr_pstrcat(ask->p, "is encrypted, and its passphrase could not be "
                                   "asked for: ", ask->problem, NULL);
        return -1;
    }
    if (len > (size_t)size) {
        OPENSSL_cleanse(answer, sizeof(answer));
        ask->problem = "is encrypted, and the passphrase given is longer than OpenSSL "
                       "takes";
        return -1;
    }
    memcpy(buf, answer, len);
    OPENSSL_cleanse(answer, sizeof(answer));
    return (int)len;
}

apr_status_t scep_key_read_pem(apr_pool_t *p, const scep_key_dialog_t *dialog,
                               const scep_log_t *log, const char *role, const char *path,
                               BIO *bio, X509 *cert, EVP_PKEY **out, const char **problem)
{
    scep_key_cache_t *cache = dialog ? dialog->cache : NULL;
    ask_t ask = { p, dialog, role, path, key_type_word(cert), 0, NULL };
    cached_key_t *cached;
    struct stat st;
    EVP_PKEY *key;
    int have_stat = stat(path, &st) == 0;

    if (have_stat && (cached = cache_find(cache, path, &st)) != NULL) {
        const unsigned char *der = cached->der;

        if ((key = d2i_AutoPrivateKey(NULL, &der, (long)cached->der_len)) != NULL) {
            *out = scep_util_own_EVP_PKEY(p, key);
            return APR_SUCCESS;
        }
        ERR_clear_error();
    }
    ERR_clear_error();
    key = PEM_read_bio_PrivateKey(bio, NULL, pem_passphrase, &ask);
    if (!key) {
        const char *detail = scep_util_openssl_errors(p);

        if (ask.problem) {
            *problem = ask.problem;
        }
        else if (ask.asked) {
            *problem = apr_pstrcat(p, "cannot be decrypted with the passphrase the "
                                   "dialog gave (a wrong passphrase? ", detail, ")", NULL);
        }
        else {
            *problem = apr_pstrcat(p, "holds no PEM private key (", detail, ")", NULL);
        }
        return APR_EINVAL;
    }
    scep_util_own_EVP_PKEY(p, key);
    if (ask.asked) {
        scep_log(log, SCEP_LOG_NOTICE, "SCEP00500: %s '%s' decrypted with the passphrase "
                 "from %s", role, path,
                 dialog && dialog->kind == SCEP_KEY_DIALOG_EXEC ? dialog->program
                                                                : "the terminal");
        if (have_stat) {
            cache_put(cache, path, &st, key);
        }
    }
    *out = key;
    return APR_SUCCESS;
}
