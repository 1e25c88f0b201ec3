// Run once by compose's mongo-init job: make mongo1..3 the replica set rs0, and wait until
// it has a primary (trackd starts after this job exits 0).
try {
  rs.status();
} catch (error) {
  rs.initiate({
    _id: "rs0",
    members: [
      { _id: 0, host: "mongo1:27017" },
      { _id: 1, host: "mongo2:27017" },
      { _id: 2, host: "mongo3:27017" },
    ],
  });
}
for (let i = 0; i < 120 && !db.hello().primary; i++) {
  sleep(1000);
}
if (!db.hello().primary) {
  throw new Error("replica set rs0 has no primary after 120 s");
}
