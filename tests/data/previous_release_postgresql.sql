-- The schema the release before migrations made on postgresql: the DDL its
-- SQLModel.metadata.create_all emitted (captured once, never regenerate it). Loaded by
-- tests/test_migrations.py to prove `kcc db upgrade` recognises and keeps such a database.

CREATE TABLE "user" (
	name VARCHAR(64) NOT NULL,
	role VARCHAR(32) NOT NULL,
	id SERIAL NOT NULL,
	password_hash VARCHAR NOT NULL,
	skills VARCHAR(512) NOT NULL,
	device VARCHAR(64) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	active BOOLEAN NOT NULL,
	PRIMARY KEY (id)
);

CREATE UNIQUE INDEX ix_user_name ON "user" (name);

CREATE TABLE flow_versions (
	id SERIAL NOT NULL,
	flow VARCHAR(64) NOT NULL,
	number INTEGER NOT NULL,
	digest VARCHAR(16) NOT NULL,
	text TEXT NOT NULL,
	author VARCHAR(64) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	comment VARCHAR(500) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (flow, number)
);

CREATE INDEX ix_flow_versions_digest ON flow_versions (digest);

CREATE INDEX ix_flow_versions_flow ON flow_versions (flow);

CREATE TABLE flow_live (
	flow VARCHAR(64) NOT NULL,
	number INTEGER NOT NULL,
	since TIMESTAMP WITH TIME ZONE NOT NULL,
	generation INTEGER NOT NULL,
	PRIMARY KEY (flow)
);

CREATE TABLE flow_audit (
	id SERIAL NOT NULL,
	flow VARCHAR(64) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	actor VARCHAR(64) NOT NULL,
	action VARCHAR(16) NOT NULL,
	from_number INTEGER,
	to_number INTEGER NOT NULL,
	comment VARCHAR(500) NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_flow_audit_flow ON flow_audit (flow);

CREATE TABLE call_records (
	id SERIAL NOT NULL,
	call_sid VARCHAR(64) NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	ended_at TIMESTAMP WITH TIME ZONE NOT NULL,
	flow VARCHAR NOT NULL,
	flow_version VARCHAR(64) NOT NULL,
	language VARCHAR(8) NOT NULL,
	product VARCHAR,
	theme VARCHAR,
	path JSON,
	verification VARCHAR NOT NULL,
	outcome VARCHAR NOT NULL,
	self_service BOOLEAN NOT NULL,
	call_status VARCHAR NOT NULL,
	queued_at TIMESTAMP WITH TIME ZONE,
	PRIMARY KEY (id)
);

CREATE INDEX ix_call_records_product ON call_records (product);

CREATE UNIQUE INDEX ix_call_records_call_sid ON call_records (call_sid);

CREATE TABLE applications (
	application_number VARCHAR(20) NOT NULL,
	product VARCHAR(64) NOT NULL,
	status VARCHAR(32) NOT NULL,
	status_date DATE NOT NULL,
	dob_hmac VARCHAR(64) NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (application_number)
);

CREATE INDEX ix_applications_product ON applications (product);

CREATE TABLE adviser_state_changes (
	id SERIAL NOT NULL,
	adviser VARCHAR(64) NOT NULL,
	state VARCHAR(16) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	call_sid VARCHAR(64),
	PRIMARY KEY (id)
);

CREATE INDEX ix_adviser_state_changes_adviser ON adviser_state_changes (adviser);

CREATE INDEX ix_adviser_state_changes_at ON adviser_state_changes (at);

CREATE TABLE wrap_ups (
	id SERIAL NOT NULL,
	adviser VARCHAR(64) NOT NULL,
	call_sid VARCHAR(64) NOT NULL,
	category VARCHAR(64) NOT NULL,
	note VARCHAR(2000) NOT NULL,
	at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_wrap_ups_adviser ON wrap_ups (adviser);

CREATE INDEX ix_wrap_ups_call_sid ON wrap_ups (call_sid);
