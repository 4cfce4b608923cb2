-- The example CRM: customers and their support tickets, full of personal data that the agent
-- must only ever see masked. Loaded once by the postgres image (docker-entrypoint-initdb.d, after
-- init-roles.sh) as the database's owner, and by the example's tests into their own PostgreSQL.
CREATE TABLE customers (
  id          int PRIMARY KEY,
  name        text NOT NULL,
  email       text NOT NULL,
  phone       text,
  card_number text,
  ssn         text
);

CREATE TABLE tickets (
  id          int PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers ON DELETE CASCADE,
  subject     text NOT NULL,
  body        text NOT NULL
);

INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '+1 415 555 0101', '4111 1111 1111 1111', '123-45-6789'),
  (2, 'Grace Hopper', 'grace@navy.example', '+1 202 555 0199', '5500-0000-0000-0004', '219-09-9999'),
  (3, 'Alan Turing', 'alan@bletchley.example', '+44 20 7946 0958', '340000000000009', '078-05-1120');

-- Personal data in free text too: the policy's detectors find it where no column rule can.
INSERT INTO tickets VALUES
  (1, 1, 'Refund', 'Please refund the charge on card 4111 1111 1111 1111, reply to ada@example.com'),
  (2, 2, 'Address change', 'New phone +1 202 555 0199; my SSN is 219-09-9999 if you need it'),
  (3, 3, 'Close my account', 'Delete everything you hold about me.');

-- What the sidecar's role may do at all; the AccessPolicy narrows it further.
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, tickets TO support_agent;
