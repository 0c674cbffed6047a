// Drives a perpkit localnet with the Solana clients most people use, none of
// them written here: @solana/web3.js 1.x, @coral-xyz/anchor 0.32 and
// @solana/kit. Run by tests/test_conformance.py, which prepares a market with
// one 20x long and writes the addresses to a JSON file:
//
//   node clients.mjs SETUP.json   ->   one JSON object of results on stdout
//
// Each step records what it saw and how long confirming took; the first
// failure ends the run with {"failed": "step: reason"} and exit code 1.
import fs from "node:fs";
import anchor from "@coral-xyz/anchor";
import web3 from "@solana/web3.js";
import * as kit from "@solana/kit";

const setup = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const idl = JSON.parse(fs.readFileSync(setup.idl, "utf8"));
const payer = web3.Keypair.fromSecretKey(Uint8Array.from(setup.payer));
const pk = (s) => new web3.PublicKey(s);
const results = { steps: [] };
let step = "start";

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - t0)];
}

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The chain's time, as the program sees it: the Clock sysvar's unix_timestamp.
// (`getBlockTime(getSlot())` is no substitute on perpkit localnet: blocks are
// made per transaction, and the slots between them are skipped slots.)
async function chainNow(connection) {
  const clock = await connection.getAccountInfo(web3.SYSVAR_CLOCK_PUBKEY, "confirmed");
  const time = Number(clock.data.readBigInt64LE(32));
  check(time > 0, `clock unix_timestamp ${time}`);
  return time;
}

// -- @solana/web3.js 1.x: the default WebSocket is the RPC port + 1 ------------
async function web3Steps(connection) {
  step = "web3.js transfer + confirmTransaction";
  const to = web3.Keypair.generate().publicKey;
  const tx = new web3.Transaction().add(
    web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: to, lamports: 1_000_000_000 }),
  );
  const latest = await connection.getLatestBlockhash("confirmed");
  tx.recentBlockhash = latest.blockhash;
  tx.feePayer = payer.publicKey;
  tx.sign(payer);
  const signature = await connection.sendRawTransaction(tx.serialize());
  const [confirmed, ms] = await timed(() =>
    within(connection.confirmTransaction({ signature, ...latest }, "confirmed"), 10_000, step),
  );
  check(confirmed.value.err === null, `confirmTransaction: ${JSON.stringify(confirmed.value)}`);
  check((await connection.getBalance(to)) === 1_000_000_000, "the transfer did not land");
  results.steps.push({ client: "web3.js", step: "confirmTransaction (transfer)", confirm_ms: ms });

  step = "web3.js sendAndConfirmTransaction";
  const again = new web3.Transaction().add(
    web3.SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: to, lamports: 5 }),
  );
  const [, ms2] = await timed(() =>
    within(web3.sendAndConfirmTransaction(connection, again, [payer], { commitment: "confirmed" }), 10_000, step),
  );
  results.steps.push({ client: "web3.js", step: "sendAndConfirmTransaction", confirm_ms: ms2 });

  step = "web3.js getParsedTransaction";
  const parsed = await connection.getParsedTransaction(signature, {
    commitment: "confirmed",
    maxSupportedTransactionVersion: 0,
  });
  const ix0 = parsed.transaction.message.instructions[0];
  check(ix0.program === "system" && ix0.parsed.type === "transfer", `instruction 0: ${JSON.stringify(ix0)}`);
  check(ix0.parsed.info.lamports === 1_000_000_000 && ix0.parsed.info.destination === to.toBase58(), "info");
  results.parsed_transaction = { program: ix0.program, type: ix0.parsed.type };

  step = "web3.js getParsedAccountInfo";
  const token = await connection.getParsedAccountInfo(pk(setup.cranker_token), "confirmed");
  const info = token.value.data;
  check(info.program === "spl-token" && info.parsed.type === "account", `token account: ${JSON.stringify(info)}`);
  check(info.parsed.info.mint === setup.quote_mint && info.parsed.info.owner === payer.publicKey.toBase58(), "owner");
  const mint = await connection.getParsedAccountInfo(pk(setup.quote_mint), "confirmed");
  check(mint.value.data.parsed.type === "mint" && mint.value.data.parsed.info.decimals === 6, "mint");
  results.parsed_accounts = [info.parsed.type, mint.value.data.parsed.type];
}

// -- @coral-xyz/anchor 0.32 ---------------------------------------------------
function anchorProgram(connection) {
  const provider = new anchor.AnchorProvider(connection, new anchor.Wallet(payer), { commitment: "confirmed" });
  return new anchor.Program(idl, provider);
}

async function anchorSetPrice(program, price, now) {
  return program.methods
    .setOraclePrice(new anchor.BN(price), new anchor.BN(0), new anchor.BN(now))
    .accountsStrict({ authority: payer.publicKey, oracle: pk(setup.oracle) });
}

function liquidateCall(program) {
  return program.methods.liquidate().accountsStrict({
    cranker: payer.publicKey,
    market: pk(setup.market),
    book: pk(setup.book),
    oracle: pk(setup.oracle),
    vault: pk(setup.vault),
    crankerToken: pk(setup.cranker_token),
    marketAuthority: pk(setup.market_authority),
    tokenProgram: pk(setup.token_program),
  });
}

async function anchorSteps(connection, program) {
  step = "anchor Program(idl) account fetch";
  check(program.programId.toBase58() === setup.program_id, `program id ${program.programId.toBase58()}`);
  const market = await program.account.market.fetch(pk(setup.market));
  check(market.oracle.toBase58() === setup.oracle && market.vault.toBase58() === setup.vault, "market fields");
  const oracle = await program.account.oracle.fetch(pk(setup.oracle));
  check(oracle.price.toString() === String(setup.price), `oracle price ${oracle.price}`);
  results.anchor_fetch = { market_oracle: market.oracle.toBase58(), oracle_price: oracle.price.toString() };

  step = "anchor .rpc() set_oracle_price, seen by web3.js onAccountChange";
  const seen = new Promise((resolve) => {
    const id = connection.onAccountChange(
      pk(setup.oracle),
      (account, context) => {
        connection.removeAccountChangeListener(id);
        resolve({ account, slot: context.slot });
      },
      { commitment: "confirmed" },
    );
  });
  const now = await chainNow(connection);
  const [signature, ms] = await timed(async () => (await anchorSetPrice(program, setup.price, now)).rpc());
  // web3.js subscribes in the background once its socket is open, with no
  // event for "subscribed": a write that lands first is not notified (on any
  // validator). Write again until the notification comes.
  let change = null;
  for (let attempt = 0; change === null && attempt < 20; attempt++) {
    change = await Promise.race([seen, new Promise((resolve) => setTimeout(() => resolve(null), 500))]);
    if (change === null) await (await anchorSetPrice(program, setup.price, now)).rpc();
  }
  check(change !== null, "onAccountChange: no notification in 10 s of writes");
  const decoded = program.coder.accounts.decode("oracle", change.account.data);
  check(decoded.publishTime.toString() === String(now), `notified publish time ${decoded.publishTime}`);
  results.steps.push({ client: "anchor", step: ".rpc() set_oracle_price", confirm_ms: ms, signature });

  step = "anchor error mapped to the IDL";
  try {
    await liquidateCall(program).rpc();
    check(false, "liquidate with nothing to liquidate succeeded");
  } catch (err) {
    const code = err.error?.errorCode?.code ?? err.code;
    const number = err.error?.errorCode?.number ?? err.code;
    const named = idl.errors.find((e) => e.code === number || e.name === code);
    check(named && named.name === "NothingToLiquidate", `error: ${err.constructor.name} ${err.message}`);
    results.anchor_error = { class: err.constructor.name, code: named.code, name: named.name, msg: err.error?.errorMessage ?? err.msg ?? null };
  }
}

// -- @solana/kit: send and confirm, subscriptions ------------------------------
function kitInstruction(ix) {
  const { AccountRole } = kit;
  return {
    programAddress: kit.address(ix.programId.toBase58()),
    accounts: ix.keys.map((k) => ({
      address: kit.address(k.pubkey.toBase58()),
      role: k.isSigner
        ? k.isWritable
          ? AccountRole.WRITABLE_SIGNER
          : AccountRole.READONLY_SIGNER
        : k.isWritable
          ? AccountRole.WRITABLE
          : AccountRole.READONLY,
    })),
    data: new Uint8Array(ix.data),
  };
}

async function kitSteps(connection, program) {
  step = "kit sendAndConfirmTransaction (set_oracle_price past the liquidation price)";
  const rpc = kit.createSolanaRpc(setup.url);
  const rpcSubscriptions = kit.createSolanaRpcSubscriptions(setup.ws_url);
  const signer = await kit.createKeyPairSignerFromBytes(Uint8Array.from(setup.payer));
  const abort = new AbortController();
  try {
    const slots = await rpcSubscriptions.slotNotifications().subscribe({ abortSignal: abort.signal });
    const accounts = await rpcSubscriptions
      .accountNotifications(kit.address(setup.oracle), { commitment: "confirmed", encoding: "base64" })
      .subscribe({ abortSignal: abort.signal });
    // kit queues notifications for an iterator only once it is polled: poll before sending.
    const nextAccount = accounts[Symbol.asyncIterator]().next();
    const nextSlot = slots[Symbol.asyncIterator]().next();
    const now = await chainNow(connection);
    const ix = await (await anchorSetPrice(program, setup.crash_price, now)).instruction();
    const { value: latest } = await rpc.getLatestBlockhash({ commitment: "confirmed" }).send();
    const message = kit.pipe(
      kit.createTransactionMessage({ version: 0 }),
      (m) => kit.setTransactionMessageFeePayerSigner(signer, m),
      (m) => kit.setTransactionMessageLifetimeUsingBlockhash(latest, m),
      (m) => kit.appendTransactionMessageInstruction(kitInstruction(ix), m),
    );
    const transaction = await kit.signTransactionMessageWithSigners(message);
    const sendAndConfirm = kit.sendAndConfirmTransactionFactory({ rpc, rpcSubscriptions });
    const [, ms] = await timed(() =>
      within(sendAndConfirm(transaction, { commitment: "confirmed" }), 10_000, "sendAndConfirmTransaction"),
    );
    const signature = kit.getSignatureFromTransaction(transaction);
    results.steps.push({ client: "kit", step: "sendAndConfirmTransaction set_oracle_price", confirm_ms: ms, signature });

    step = "kit accountNotifications and slotNotifications";
    const first = await within(nextAccount, 10_000, "accountNotifications");
    const data = Buffer.from(first.value.value.data[0], "base64");
    const oracle = program.coder.accounts.decode("oracle", data);
    check(oracle.price.toString() === String(setup.crash_price), `notified price ${oracle.price}`);
    const slot = await within(nextSlot, 10_000, "slotNotifications");
    check(typeof slot.value.slot === "bigint", `slot notification ${JSON.stringify(slot.value, (_, v) => String(v))}`);
    results.kit_notifications = { account_price: oracle.price.toString(), slot: String(slot.value.slot) };
  } finally {
    abort.abort();
  }
}

// -- anchor again: the liquidation, and its event from the logs ----------------
async function liquidationSteps(connection, program) {
  step = "anchor .rpc() liquidate";
  const [signature, ms] = await timed(() => liquidateCall(program).rpc());
  results.steps.push({ client: "anchor", step: ".rpc() liquidate", confirm_ms: ms, signature });

  step = "anchor EventParser on the liquidation's logs";
  const tx = await connection.getTransaction(signature, { commitment: "confirmed", maxSupportedTransactionVersion: 0 });
  const parser = new anchor.EventParser(program.programId, program.coder);
  const events = [...parser.parseLogs(tx.meta.logMessages)];
  check(events.length === 1 && events[0].name === "liquidationBatch", `events: ${events.map((e) => e.name)}`);
  const batch = events[0].data;
  results.event = Object.fromEntries(
    Object.entries(batch).map(([k, v]) => [k, v && typeof v.toString === "function" ? v.toString() : v]),
  );
}

async function main() {
  const connection = new web3.Connection(setup.url, "confirmed");
  const program = anchorProgram(connection);
  await web3Steps(connection);
  await anchorSteps(connection, program);
  await kitSteps(connection, program);
  await liquidationSteps(connection, program);
  results.versions = {
    node: process.version,
    "@solana/web3.js": JSON.parse(fs.readFileSync(new URL("./node_modules/@solana/web3.js/package.json", import.meta.url))).version,
    "@coral-xyz/anchor": JSON.parse(fs.readFileSync(new URL("./node_modules/@coral-xyz/anchor/package.json", import.meta.url))).version,
    "@solana/kit": JSON.parse(fs.readFileSync(new URL("./node_modules/@solana/kit/package.json", import.meta.url))).version,
  };
}

main().then(
  () => {
    process.stdout.write(JSON.stringify(results) + "\n");
    process.exit(0);
  },
  (err) => {
    results.failed = `${step}: ${err && err.stack ? err.stack : err}`;
    process.stdout.write(JSON.stringify(results) + "\n");
    process.exit(1);
  },
);
