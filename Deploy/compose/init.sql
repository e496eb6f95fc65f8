-- The demo table the compose setup captures.
CREATE TABLE IF NOT EXISTS public.products (id int PRIMARY KEY, name text, price numeric(10, 2));
