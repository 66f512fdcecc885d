// Encrypt a JWT to a webhook channel instance's JWE public key with the npm `jose` package, as a
// client would: one JSON line {jwt, publicKey, alg, enc} in, the compact JWE out.
const { CompactEncrypt, importSPKI } = require("jose");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const { jwt, publicKey, alg, enc } = JSON.parse(input);
  const key = await importSPKI(publicKey, alg);
  const token = await new CompactEncrypt(new TextEncoder().encode(jwt))
    .setProtectedHeader({ alg, enc, cty: "JWT" })
    .encrypt(key);
  process.stdout.write(token);
});
