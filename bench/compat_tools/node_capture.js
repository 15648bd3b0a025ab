// node-postgres: plain and parameterised queries, a named prepared statement, a rolled-back
// insert; one connection per step (application_name labels it). Run by bench/compat_corpus.py.
const { Client } = require('pg');
const port = Number(process.argv[2]);
const database = process.argv[3];

// each result as a JSON line: field names, type OIDs, rows (compared between servers by the tests)
async function logged(c, ...args) {
  const r = await c.query(...args);
  console.log(JSON.stringify({ command: r.command, rowCount: r.rowCount,
    fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows }));
  return r;
}

async function step(name, fn) {
  const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database, application_name: 'node-postgres:' + name });
  await c.connect();
  try {
    await fn(c);
  } catch (e) {
    console.log(name + ' error: ' + e.message);
  } finally {
    await c.end();
  }
}

(async () => {
  await step('query', async (c) => {
    await logged(c, 'SELECT count(*) FROM store_sales');
    await logged(c, 'SELECT i_item_id, i_current_price FROM item ORDER BY i_item_sk LIMIT 5');
  });
  await step('parameters', async (c) => {
    await logged(c, 'SELECT $1::int + 1 AS n', [41]);
    await logged(c, 'SELECT c_customer_id, c_birth_year FROM customer WHERE c_birth_year = $1 ORDER BY 1 LIMIT 3', [1950]);
    await logged(c, 'SELECT e_name FROM cc_emp WHERE e_dept = $1 AND e_salary >= $2', [1, '10.00']);
    await logged(c, { text: 'SELECT d_date FROM date_dim WHERE d_date_sk BETWEEN $1 AND $2', values: [2450816, 2450820] });
  });
  await step('prepared', async (c) => {
    const q = { name: 'by_item', text: 'SELECT ss_ticket_number FROM store_sales WHERE ss_item_sk = $1 ORDER BY 1 LIMIT 3', values: [1] };
    await logged(c, q);
    await logged(c, { ...q, values: [2] });
  });
  await step('rowMode', async (c) => {
    await logged(c, { text: 'SELECT s_store_sk, s_store_name FROM store WHERE s_store_sk < $1', values: [3], rowMode: 'array' });
  });
  await step('transaction', async (c) => {
    await logged(c, 'BEGIN');
    await logged(c, 'INSERT INTO cc_emp (e_id, e_dept, e_name, e_salary) VALUES ($1, $2, $3, $4)', [99, 1, 'zed', '1.00']);
    await logged(c, 'UPDATE cc_emp SET e_salary = e_salary + $1 WHERE e_id = $2', ['1.00', 99]);
    await logged(c, 'DELETE FROM cc_emp WHERE e_id = $1', [99]);
    await logged(c, 'ROLLBACK');
  });
})().catch((e) => { console.log('failed: ' + e); process.exit(2); });
