#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SetHandler scep-status: counters per endpoint and outcome, and latency histograms, in
# the Prometheus text format and as JSON, summed over every httpd process.
source "$(dirname "$0")/lib.sh"
t_init
require_module

make_pki "$T/pki" Status
RA=$T/pki/ra.pem
CA=$T/pki/ca.pem
CH=$(openssl rand -hex 12)
httpd_conf "$(
    scep_location /scep "$T/pki" ra "ScepChallenge $CH"
    scep_location /other "$T/pki" ra "ScepChallenge $CH"
    echo "<Location /scep-status>"
    echo "    SetHandler scep-status"
    echo "    Require all granted"
    echo "</Location>"
)"
httpd_start || t_done

for i in 1 2 3; do
    probe_enrollment_request "e$i" "$RA" --challenge "$CH"
    send_request "e$i" /scep POST
    check_success "e$i" "$RA" "$CA" "enrollment $i" >/dev/null || fail "enrollment $i"
done
probe_enrollment_request bad "$RA" --challenge "wrong-$CH"
send_request bad /other POST
for i in $(seq 12); do http_get "/scep?operation=GetCACaps" "$T/caps"; done
http_get "/scep?operation=Nonsense" "$T/nonsense"
http_get "/other?operation=GetCACert" "$T/cacert"

http_get /scep-status "$T/status.txt"
expect_eq "$HTTP_CODE $HTTP_CTYPE" "200 text/plain; version=0.0.4" "Prometheus text format"
m=$(cat "$T/status.txt")
expect_match "$m" 'scep_requests_total\{location="/scep",outcome="issued"\} 3' "three issued at /scep"
expect_match "$m" 'scep_requests_total\{location="/scep",outcome="getcacaps"\} 12' "twelve GetCACaps"
expect_match "$m" 'scep_requests_total\{location="/scep",outcome="malformed"\} 1' "one malformed request"
expect_match "$m" 'scep_requests_total\{location="/other",outcome="failure:badRequest"\} 1' "one refusal at /other"
expect_match "$m" 'scep_requests_total\{location="/other",outcome="getcacert"\} 1' "one GetCACert at /other"
expect_match "$m" 'scep_request_duration_seconds_bucket\{location="/scep",le="\+Inf"\} 16' "the histogram counts every /scep request"
expect_match "$m" 'scep_request_duration_seconds_count\{location="/scep"\} 16' "and its _count agrees"
expect_match "$m" '# TYPE scep_request_duration_seconds histogram' "the histogram is typed"
http_get "/scep-status?format=json" "$T/status.json"
expect_eq "$HTTP_CTYPE" application/json "JSON on request"
expect_match "$(cat "$T/status.json")" '"location":"/scep","requests":\{"issued":3,' "JSON counts per endpoint"
if command -v python3 >/dev/null; then
    python3 -m json.tool "$T/status.json" >/dev/null && pass "the JSON parses" || fail "the JSON does not parse"
fi
http_post /scep-status "$T/caps" "$T/post.out"
expect_eq "$HTTP_CODE" 405 "POST to the status handler: 405"

check_error_log '\[scep:warn\] .*SCEP00212: '
t_done
