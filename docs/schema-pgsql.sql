-- mod_scep schema step 1: from version 0 to 1
CREATE TABLE scep_schema (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version integer NOT NULL,
    upgraded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE scep_schema IS 'mod_scep: schema version; every writer locks this row first, so writers run one at a time across all nodes';
CREATE TABLE scep_devices (
    key text COLLATE "C" PRIMARY KEY CHECK (key <> ''),
    ips text[] NOT NULL DEFAULT '{}',
    serial text,
    verifier_algorithm integer NOT NULL DEFAULT 0,
    verifier_iterations bigint NOT NULL DEFAULT 0,
    verifier_salt bytea,
    verifier_hash bytea,
    flags integer NOT NULL DEFAULT 0,
    expires bigint NOT NULL DEFAULT 0,
    profile text,
    comment text,
    created bigint NOT NULL,
    updated bigint NOT NULL,
    last_serial text,
    last_not_after bigint NOT NULL DEFAULT 0,
    last_enrolled bigint NOT NULL DEFAULT 0,
    enrollments bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE scep_devices IS 'mod_scep: registrations, by canonical key (host name, *.suffix, name:, id:, user:); the challenge is kept as a verifier only';
CREATE TABLE scep_challenges (
    digest bytea PRIMARY KEY CHECK (length(digest) = 32),
    created bigint NOT NULL,
    expires bigint NOT NULL,
    fqdn text,
    profile text
);
CREATE INDEX scep_challenges_expires ON scep_challenges (expires);
COMMENT ON TABLE scep_challenges IS 'mod_scep: minted one-time challenges, by SHA-256 of the challenge; consumed by deleting the row';
CREATE TABLE scep_failures (
    name text PRIMARY KEY,
    count bigint NOT NULL,
    last bigint NOT NULL,
    locked_until bigint NOT NULL DEFAULT 0,
    period bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE scep_failures IS 'mod_scep: failed challenges and lockouts, by requested name';
CREATE TABLE scep_transactions (
    transaction_id text COLLATE "C" NOT NULL,
    requester bytea NOT NULL CHECK (length(requester) IN (0, 32)),
    state text NOT NULL CHECK (state IN ('issued', 'pending', 'approved', 'rejected',
                                         'expired', 'upstream')),
    request_digest bytea NOT NULL,
    fqdn text,
    serial text,
    created bigint NOT NULL,
    request bytea,
    grant_kind integer NOT NULL DEFAULT 0,
    registration text,
    ips text,
    serial_number text,
    renews text,
    client_ip text,
    subject text,
    decided_at bigint NOT NULL DEFAULT 0,
    decided_by text,
    reason text,
    upstream_pending boolean NOT NULL DEFAULT false,
    endpoint text,
    identity_name text,
    identity_where integer NOT NULL DEFAULT 0,
    signer_key bytea CHECK (length(signer_key) = 32),
    PRIMARY KEY (transaction_id, requester),
    CHECK (length(requester) = 0 OR requester IS NOT DISTINCT FROM signer_key)
);
CREATE INDEX scep_transactions_held ON scep_transactions (transaction_id)
    WHERE state <> 'issued';
COMMENT ON TABLE scep_transactions IS 'mod_scep: SCEP transactions, one per transactionID and requester (SHA-256 of its public key; empty for old records)';
CREATE TABLE scep_certificates (
    serial text COLLATE "C" PRIMARY KEY,
    der bytea NOT NULL,
    fqdn text,
    subject text,
    transaction_id text,
    not_before bigint NOT NULL,
    not_after bigint NOT NULL,
    issued_at bigint NOT NULL,
    revoked_at bigint NOT NULL DEFAULT 0,
    revocation_reason integer NOT NULL DEFAULT 0,
    issuer_key_id bytea
);
CREATE INDEX scep_certificates_fqdn ON scep_certificates (fqdn);
CREATE INDEX scep_certificates_revoked ON scep_certificates (serial)
    WHERE revoked_at <> 0;
COMMENT ON TABLE scep_certificates IS 'mod_scep: every certificate issued, with its revocation';
CREATE VIEW scep_revocations AS
    SELECT serial, fqdn, subject, to_timestamp(revoked_at) AS revoked,
           revocation_reason
    FROM scep_certificates WHERE revoked_at <> 0;
CREATE TABLE scep_crl_state (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL DEFAULT 0,
    changed_at bigint NOT NULL DEFAULT 0
);
INSERT INTO scep_crl_state DEFAULT VALUES;
CREATE TABLE scep_crl_published (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    number bigint NOT NULL,
    generation bigint NOT NULL,
    this_update bigint NOT NULL,
    next_update bigint NOT NULL,
    ca_id bytea NOT NULL,
    der bytea NOT NULL
);
CREATE FUNCTION scep_crl_number_never_falls() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
    IF NEW.number < OLD.number THEN
        RAISE EXCEPTION 'CRL number % would fall below %', NEW.number, OLD.number;
    END IF;
    RETURN NEW;
END$$;
CREATE TRIGGER scep_crl_number_never_falls BEFORE UPDATE ON scep_crl_published
    FOR EACH ROW EXECUTE FUNCTION scep_crl_number_never_falls();
INSERT INTO scep_schema (version) VALUES (1);
