import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { PlacementFence } from "../../src/archive/archive-store.js";
import { placeStagedVersionFiles, type StagedVersionFiles } from "../../src/archive/fenced-placement.js";

const tempDirs: string[] = [];
after(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

const CLAIM_LOST = "the claim ran out";
const MARK = ".cogment-ts-pending-v000001";
/** The pending mark this writer leaves (removed only once its commit completed, by ArchiveStore.markCommitted). */
const OWN_MARK = { [MARK]: "my info" };

/** A fence whose n-th confirm() runs `steps[n]` (what other writers do meanwhile), then resolves, or rejects when the step returns "lost". */
function scriptedFence(steps: (() => Promise<"held" | "lost">)[]): PlacementFence & { readonly calls: number } {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    async confirm() {
      const step = steps[calls++];
      assert.ok(step !== undefined, `confirm() called ${calls} times`);
      if ((await step()) === "lost") {
        throw new Error(CLAIM_LOST);
      }
    },
  };
}

const held = (): Promise<"held"> => Promise.resolve("held");
const lost = (): Promise<"lost"> => Promise.resolve("lost");

/** A model directory with this writer's staged files (data "mine", info "my info"). */
async function staged(): Promise<{ dir: string; files: StagedVersionFiles }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "mr-fence-"));
  tempDirs.push(dir);
  const files = {
    dataTempPath: path.join(dir, ".m-v000001.data.tmp-0000000000000001"),
    dataPath: path.join(dir, "m-v000001.data"),
    infoTempPath: path.join(dir, ".m-v000001.yaml.tmp-0000000000000002"),
    infoPath: path.join(dir, "m-v000001.yaml"),
    pendingMarkPath: path.join(dir, MARK),
    infoText: "my info",
  };
  await fs.writeFile(files.dataTempPath, "mine");
  await fs.writeFile(files.infoTempPath, "my info");
  return { dir, files };
}

/** Another writer's files under the final names (written aside, renamed in, as every writer does). */
async function putOthers(files: StagedVersionFiles, which: "data" | "both"): Promise<void> {
  await fs.writeFile(`${files.dataPath}.other`, "theirs");
  await fs.rename(`${files.dataPath}.other`, files.dataPath);
  if (which === "both") {
    await fs.writeFile(`${files.infoPath}.other`, "their info");
    await fs.rename(`${files.infoPath}.other`, files.infoPath);
  }
}

const contents = async (dir: string): Promise<Record<string, string>> =>
  Object.fromEntries(await Promise.all((await fs.readdir(dir)).sort().map(async (name) => [name, await fs.readFile(path.join(dir, name), "utf8")])));

describe("fenced placement of a version's files (several instances on one archive directory)", () => {
  test("confirmed: both files go in place and no temporary file stays", async () => {
    const { dir, files } = await staged();
    const fence = scriptedFence([held]);
    await placeStagedVersionFiles(files, fence);
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.data": "mine", "m-v000001.yaml": "my info" });
    assert.equal(fence.calls, 1);
  });

  test("a pending mark already there (a writer that never committed the number) is replaced by this writer's", async () => {
    const { dir, files } = await staged();
    await fs.writeFile(files.pendingMarkPath, "their info");
    await placeStagedVersionFiles(files, scriptedFence([held]));
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.data": "mine", "m-v000001.yaml": "my info" });
  });

  test("the claim ran out before the placement: nothing is put in place, the other writer's files stay, the temporary files go", async () => {
    const { dir, files } = await staged();
    await putOthers(files, "both");
    await assert.rejects(placeStagedVersionFiles(files, scriptedFence([lost])), { message: CLAIM_LOST });
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.data": "theirs", "m-v000001.yaml": "their info" });
  });

  test("a file at the final name is not replaced when the second confirmation fails (the other writer committed the number)", async () => {
    const { dir, files } = await staged();
    // Confirmed, then paused: the number's next holder puts its files in place meanwhile.
    const fence = scriptedFence([
      async () => {
        await putOthers(files, "both");
        return "held";
      },
      lost,
    ]);
    await assert.rejects(placeStagedVersionFiles(files, fence), { message: CLAIM_LOST });
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.data": "theirs", "m-v000001.yaml": "their info" });
    assert.equal(fence.calls, 2);
  });

  test("a failed writer does not remove the data file another writer put at the final name over its own", async () => {
    const { dir, files } = await staged();
    // Its data is in place; then, paused, the number's next holder replaces that data and puts its info in place.
    await fs.writeFile(files.infoPath, "their info");
    const fence = scriptedFence([
      held,
      async () => {
        await putOthers(files, "data");
        return "lost";
      },
    ]);
    await assert.rejects(placeStagedVersionFiles(files, fence), { message: CLAIM_LOST });
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.data": "theirs", "m-v000001.yaml": "their info" });
  });

  test("a failed writer removes its own data file from the final name", async () => {
    const { dir, files } = await staged();
    await fs.writeFile(files.infoPath, "their info"); // e.g. a leftover info; the claim then turns out lost
    await assert.rejects(placeStagedVersionFiles(files, scriptedFence([held, lost])), { message: CLAIM_LOST });
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.yaml": "their info" });
  });

  test("the holder of the claim, confirmed twice, replaces the files a writer left without committing them", async () => {
    const { dir, files } = await staged();
    await putOthers(files, "both");
    // The second confirmation comes before the first file is replaced: the pending mark is in place by then.
    let beforeReplacing: Record<string, string> = {};
    const fence = scriptedFence([
      held,
      async () => {
        beforeReplacing = await contents(dir);
        return "held";
      },
      held,
    ]);
    await placeStagedVersionFiles(files, fence);
    assert.deepEqual(beforeReplacing, {
      ...OWN_MARK,
      ".m-v000001.data.tmp-0000000000000001": "mine",
      ".m-v000001.yaml.tmp-0000000000000002": "my info",
      "m-v000001.data": "theirs",
      "m-v000001.yaml": "their info",
    });
    assert.deepEqual(await contents(dir), { ...OWN_MARK, "m-v000001.data": "mine", "m-v000001.yaml": "my info" });
    assert.equal(fence.calls, 3);
  });
});
