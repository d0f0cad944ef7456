import { PGlite } from "@electric-sql/pglite";
let t=Date.now(); const db = new PGlite(); await db.waitReady; console.log("mem init", Date.now()-t, process.memoryUsage().rss>>20);
t=Date.now(); const r = await db.query("select $1::jsonb as j, now() as t, 1::int8 as b, $2::text as s", [JSON.stringify(["a"]), "x"]); console.log(r.rows, Date.now()-t);
t=Date.now(); const dump = await db.dumpDataDir("none"); console.log("dump", Date.now()-t, dump.size);
t=Date.now(); const db2 = new PGlite({loadDataDir: dump}); await db2.waitReady; console.log("load", Date.now()-t, process.memoryUsage().rss>>20);
await db.exec("create table t(a jsonb)"); await db.query("insert into t values ($1)", [JSON.stringify(["x","y"])]); console.log((await db.query("select * from t")).rows);
