#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The harness itself, without mod_scep: httpd starts from the generated configuration,
# answers 404, stops cleanly, and the error-log check does catch unexpected lines.
source "$(dirname "$0")/lib.sh"
t_init

httpd_conf --no-scep
httpd_configtest || { cat "$HTTPD_ROOT/configtest.out"; die "httpd -t refuses the base configuration"; }
pass "httpd -t accepts the base configuration"
httpd_start || t_done
pass "httpd started on 127.0.0.1:$PORT"

http_get /no-such-thing "$T/body"
expect_eq "$HTTP_CODE" 404 "an unknown path answers 404"

if httpd_stop 2>"$T/stop.err"; then
    pass "httpd stopped cleanly"
else
    fail "httpd did not stop cleanly: $(cat "$T/stop.err")"
fi
if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null; then
    fail "something still answers on port $PORT"
else
    pass "nothing listens on port $PORT any more"
fi
check_error_log

# The checker must be able to fail: feed it a crash line and see it counted.
echo "[Mon Nov 23 00:00:00.000000 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 2 exit signal Segmentation fault (11)" >>"$ERROR_LOG"
before=$T_FAILS
check_error_log >"$T/selftest.out"
if ((T_FAILS == before + 1)) && grep -q AH00052 "$T/selftest.out"; then
    T_FAILS=$before
    pass "check_error_log reports a crash line"
else
    T_FAILS=$before
    fail "check_error_log did not report a crash line"
fi
echo "[Mon Nov 23 00:00:00.000000 2026] [scep:info] [pid 1:tid 1] an untagged message" >"$ERROR_LOG"
before=$T_FAILS
check_error_log >"$T/selftest.out"
if ((T_FAILS == before + 1)); then
    T_FAILS=$before
    pass "check_error_log reports an untagged mod_scep line"
else
    T_FAILS=$before
    fail "check_error_log accepted an untagged mod_scep line"
fi
t_done
