CREATE TABLE public."Employees" (
	"Id" BIGINT NOT NULL, 
	"Name" VARCHAR(20), 
	"Department" VARCHAR(10), 
	_ddb_seq NUMERIC(40, 0), 
	_ddb_synced_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	PRIMARY KEY ("Id")
);

