import { strict as assert } from "node:assert";
import { pingRun } from "../../lab/lab";

describe("lab: reading a continuous ping", () => {
    it("counts the requests up to the last answered one, the lost ones, and the longest gap", () => {
        // Replies 1-5, then 6-8 lost, then 9-10 (11 may still have been in flight at the stop: not counted).
        assert.deepEqual(pingRun([1, 2, 3, 4, 5, 9, 10], 0.2), {
            sent: 10,
            received: 7,
            lost: 3,
            longestGapSeconds: 0.6,
            intervalSeconds: 0.2,
        });
        assert.deepEqual(pingRun([1, 2, 3], 0.2), { sent: 3, received: 3, lost: 0, longestGapSeconds: 0, intervalSeconds: 0.2 });
        // A duplicate reply counts once; a first request lost counts.
        assert.deepEqual(pingRun([2, 2, 3], 0.5), { sent: 3, received: 2, lost: 1, longestGapSeconds: 0.5, intervalSeconds: 0.5 });
        assert.deepEqual(pingRun([], 0.2), { sent: 0, received: 0, lost: 0, longestGapSeconds: 0, intervalSeconds: 0.2 });
    });

    it("with the requests ping -O reported unanswered, counts an outage that lasted until the stop", () => {
        // Replies 1-3, then 4-10 reported unanswered: without them this would look like no loss at all.
        assert.deepEqual(pingRun([1, 2, 3], 0.2, 10), { sent: 10, received: 3, lost: 7, longestGapSeconds: 1.4, intervalSeconds: 0.2 });
        assert.deepEqual(pingRun([], 0.2, 5), { sent: 5, received: 0, lost: 5, longestGapSeconds: 1, intervalSeconds: 0.2 });
        // An answer after the last reported request still counts.
        assert.deepEqual(pingRun([1, 2, 3, 4], 0.2, 2), { sent: 4, received: 4, lost: 0, longestGapSeconds: 0, intervalSeconds: 0.2 });
    });
});
