-- The example CRM (the same rows as `make demo`'s): personal data in columns and in free text,
-- which the agent must only ever see masked. Loaded once by the postgres image
-- (docker-entrypoint-initdb.d, after init-roles.sh) as the database's owner, and by the example's
-- tests into their own PostgreSQL.
CREATE TABLE customers (
  id int PRIMARY KEY, name text NOT NULL, email text, phone text,
  card_number text, ssn text, notes text);
CREATE TABLE orders (
  id serial PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE,
  total numeric(10,2), placed_at timestamptz DEFAULT now());
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '+1 415 555 2671', '4111 1111 1111 1111', '123-45-6789', 'VIP; prefers email'),
  (2, 'Grace Hopper', 'grace@navy.example', '(212) 555-0182', '5500-0000-0000-0004', '219-09-9999', 'Card on file 4012888888881881, call before shipping'),
  (3, 'Alan Turing', 'alan@bletchley.example', '+44 20 7946 0958', '340000000000009', '078-05-1120', 'Refund to IBAN GB82 WEST 1234 5698 7654 32');
INSERT INTO orders (customer_id, total) VALUES (1, 120.50), (2, 89.99), (3, 42.00), (1, 15.25);

-- What the sidecar's role may do at all; the AccessPolicy narrows it further.
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, orders TO support_agent;
GRANT USAGE ON SEQUENCE orders_id_seq TO support_agent;
