using Shootdown.Hardware;
using Shootdown.Kernel.Sched;

namespace Shootdown.Tests;

/// <summary>The scheduler's step ends: where a task may be preempted and where it may not.</summary>
public class SchedTests
{
    /// <summary>A kernel thread that takes one 1 µs step per yield of its script and logs each step as "comm:i".</summary>
    private sealed class ScriptTask(int pid, Cpu cpu, Yield[] script, List<string> log) : SimTask(pid, $"t{pid}", null, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            for (int i = 0; i < script.Length; i++)
            {
                sim.Exec.Sys += 1_000;
                log.Add($"{Comm}:{i}");
                yield return script[i];
            }
        }
    }

    /// <summary>
    /// Task a runs <paramref name="script"/> on CPU 0; task b, woken on the same CPU during a's
    /// first step, needs a preemption point to run before a ends.
    /// </summary>
    private static List<string> RunWithAWakeup(Yield[] script)
    {
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 16));
        var log = new List<string>();
        var a = new ScriptTask(9001, sim.Cpus[0], script, log);
        var b = new ScriptTask(9002, sim.Cpus[0], [Yield.Resched], log);
        sim.Sched.Wake(a, 0);
        sim.Sched.WakeAt(b, 500);
        TestKit.DrainEvents(sim);
        return log;
    }

    [Fact]
    public void ASyncPointIsNoPreemptionPoint()
    {
        // b wakes at 0.5 µs and sets need_resched: a keeps the CPU through its sync points and is
        // preempted at its first cond_resched.
        List<string> log = RunWithAWakeup([Yield.Sync, Yield.Sync, Yield.Resched, Yield.Resched]);
        Assert.Equal(["t9001:0", "t9001:1", "t9001:2", "t9002:0", "t9001:3"], log);
    }

    [Fact]
    public void ACondReschedIsAPreemptionPoint()
    {
        List<string> log = RunWithAWakeup([Yield.Resched, Yield.Resched, Yield.Resched, Yield.Resched]);
        Assert.Equal(["t9001:0", "t9002:0", "t9001:1", "t9001:2", "t9001:3"], log);
    }

    /// <summary>A task that takes <paramref name="steps"/> 1 ms steps and logs, for each, when it started and on which CPU.</summary>
    private sealed class BusyTask(int pid, Cpu cpu, int steps, List<(long At, int Cpu)>? log, long stepNs = 1_000_000) : SimTask(pid, $"busy{pid}", null, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            for (int i = 0; i < steps; i++)
            {
                log?.Add((sim.Exec.Start, sim.Exec.Cpu.Id));
                sim.Exec.Sys += stepNs;
                yield return Yield.Resched;
            }
        }
    }

    [Fact]
    public void ATaskSharingABusyCpuStaysUntilAnotherCpusPeriodicBalancePullsIt()
    {
        // Node 0 of small-2node: CPUs 0-3, each busy with a task bound to it; a fifth task allowed
        // on all four wakes on CPU 0 at 100 ms and shares it. 4.0's CFS leaves it there at its
        // slice ends (turns of 16 ms with the bound task) and a busy CPU's periodic balance (every
        // 4 x 32 ms, at its own phase) takes it when it is the one waiting. The tasks' steps are
        // of 1.25 ms, so that the turns do not stay in step with the balances: every period here,
        // ticks aligned, is a multiple of 4 ms, and tasks that never sleep would otherwise meet
        // each balance at the same point of their 32 ms cycle (a real run's sleeps break that).
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 1));
        for (int c = 0; c < 4; c++)
        {
            sim.Sched.Wake(new BusyTask(9100 + c, sim.Cpus[c], 2400, null, 1_250_000), 0);
        }
        var log = new List<(long At, int Cpu)>();
        var k = new BusyTask(9200, sim.Cpus[0], 2000, log, 1_250_000) { AllowedCpus = [0, 1, 2, 3] };
        const long wake = 100_000_000;
        sim.Sched.WakeAt(k, wake);
        TestKit.DrainEvents(sim);
        Assert.Equal(128_000_000, Scheduler.BusyBalanceIntervalNs(4));
        // (A balance may take it before it first runs, while it waits for CPU 0's task to reach
        // its next step end: where it first ran is where it starts sharing.)
        int home = log[0].Cpu;
        int firstMove = log.FindIndex(e => e.Cpu != home);
        Assert.True(firstMove > 0, "the task never left the CPU it first ran on");
        // Sharing that CPU with its bound task until then, it ran about half of that time there.
        long stayed = log[firstMove].At - log[0].At;
        Assert.InRange(firstMove, stayed / 1_250_000 / 2 - 12, stayed / 1_250_000 / 2 + 12);
        // Over its whole run (about 5 s, half of each CPU it shares) it moves only when a
        // balance of another CPU finds it waiting: a few dozen times, each stay longer than a
        // slice on average.
        int moves = 0;
        for (int i = 1; i < log.Count; i++)
        {
            if (log[i].Cpu != log[i - 1].Cpu)
            {
                moves++;
            }
        }
        // (A task pulled while it waits may be pulled on again before it runs: the run's count
        // of moves is at least the count of changes of CPU between its steps.)
        Assert.True(k.Migrations >= moves, $"{k.Migrations} migrations, {moves} moves");
        Assert.InRange(moves, 20, 200);
        Assert.True((log[^1].At - log[0].At) / (double)(moves + 1) > sim.Sched.SliceNs(2), $"{moves} moves");
        // Sharing a CPU until the bound tasks end, it waited about half of that time, taking turns
        // with the task of whichever CPU it was on (its waits before each pull counted too).
        int lastMove = log.FindLastIndex(e => e.Cpu != log[^1].Cpu) + 1;
        long shared = log[lastMove].At - wake;
        Assert.InRange(k.RunDelayNs, 0.35 * shared, 0.65 * shared);
    }

    [Fact]
    public void TwoTasksOnACpuTakeTurnsOfASliceRoundedUpToTheTick()
    {
        // small-2node has 8 CPUs: latency 6 ms x (1 + log2 8) = 24 ms, a slice of 12 ms each for
        // two tasks. The tick (4 ms) finds the running task past its slice at 16 ms, not at 12 (at
        // 12 ms it has run exactly its slice, not more): turns of 16 steps of 1 ms.
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 1));
        Assert.Equal(24_000_000, sim.Sched.LatencyNs);
        Assert.Equal(12_000_000, sim.Sched.SliceNs(2));
        Assert.Equal(8_000_000, sim.Sched.SliceNs(3));
        Assert.Equal(3_000_000, sim.Sched.SliceNs(10)); // beyond 8 tasks the period is 3 ms a task
        var la = new List<(long At, int Cpu)>();
        var lb = new List<(long At, int Cpu)>();
        sim.Sched.Wake(new BusyTask(9301, sim.Cpus[0], 200, la), 0);
        sim.Sched.Wake(new BusyTask(9302, sim.Cpus[0], 200, lb), 0);
        TestKit.DrainEvents(sim);
        var steps = la.Select(e => (e.At, Task: 'a')).Concat(lb.Select(e => (e.At, Task: 'b'))).OrderBy(e => e.At).ToList();
        var turns = new List<int>();
        int run = 1;
        for (int i = 1; i < steps.Count; i++)
        {
            if (steps[i].Task == steps[i - 1].Task)
            {
                run++;
            }
            else
            {
                turns.Add(run);
                run = 1;
            }
        }
        // The first turn is cut short by the second task's wakeup; the last ones by the exits.
        Assert.True(turns.Count > 10, $"{turns.Count} turns");
        Assert.All(turns.Skip(1).Take(turns.Count - 3), n => Assert.InRange(n, 15, 17));
    }

    [Fact]
    public void ACpuGoingIdlePullsAWaitingTaskAtOnce()
    {
        // CPU 1's task ends after 105 ms; from 100 ms CPU 0 holds two tasks allowed on CPUs 0-3.
        // As CPU 1 goes idle (its idle periods averaging 1 ms, over the 0.5 ms migration cost) its
        // newly idle balance pulls the one that waits on CPU 0 (it has waited longer than that
        // cost: not cache-hot): one of them is on CPU 1 within a step of the 105 ms.
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 1));
        sim.Sched.Wake(new BusyTask(9101, sim.Cpus[1], 105, null), 0);
        sim.Sched.Wake(new BusyTask(9102, sim.Cpus[2], 200, null), 0);
        sim.Sched.Wake(new BusyTask(9103, sim.Cpus[3], 200, null), 0);
        var la = new List<(long At, int Cpu)>();
        var lk = new List<(long At, int Cpu)>();
        sim.Sched.Wake(new BusyTask(9100, sim.Cpus[0], 150, la) { AllowedCpus = [0, 1, 2, 3] }, 0);
        var k = new BusyTask(9200, sim.Cpus[0], 100, lk) { AllowedCpus = [0, 1, 2, 3] };
        sim.Sched.WakeAt(k, 100_000_000);
        TestKit.DrainEvents(sim);
        var moved = la.Concat(lk).Where(e => e.Cpu != 0).OrderBy(e => e.At).ToList();
        Assert.NotEmpty(moved);
        Assert.Equal(1, moved[0].Cpu);
        Assert.InRange(moved[0].At, 105_000_000, 107_000_000);
        // Then each runs alone on its CPU: nothing moves again.
        Assert.All(moved, e => Assert.Equal(1, e.Cpu));
    }

    /// <summary>Puts <paramref name="running"/> on <paramref name="cpu"/> and <paramref name="waiting"/> in its run queue, as enqueued after it (the head of cfs_tasks).</summary>
    private static void PlaceTasks(Cpu cpu, SimTask running, SimTask? waiting = null)
    {
        cpu.Current = running;
        cpu.CfsTasks.Add(running);
        if (waiting is not null)
        {
            cpu.RunQueue.Add(waiting);
            cpu.CfsTasks.Insert(0, waiting);
        }
    }

    /// <summary>Runs a task bound to each of CPUs <paramref name="from"/> up to <paramref name="to"/> (excluded).</summary>
    private static void PlaceBoundTasks(Sim sim, int from, int to)
    {
        for (int c = from; c < to; c++)
        {
            PlaceTasks(sim.Cpus[c], new BusyTask(9500 + c, sim.Cpus[c], 10, null));
        }
    }

    [Fact]
    public void ARunningTaskMovesOnlyAtTheFourthFailedBalanceWhenTheWaitingOneIsBound()
    {
        // Node 0 of small-2node (CPUs 0-3): CPU 0 runs a task allowed on CPUs 0-3 while one bound
        // to it waits; CPUs 1-3 run one task each (five tasks on four CPUs: CPU 1 holds less than
        // the average, and CPU 0 more than 117% of it). A balance cannot detach the running task:
        // CPU 1's balances fail, and the fourth in a row (MC's cache_nice_tries 1, + 2) asks CPU
        // 0's stopper to push a task to CPU 1 (active balance), after which the count goes back to
        // cache_nice_tries + 1 and the interval doubles.
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 1));
        Cpu c0 = sim.Cpus[0], c1 = sim.Cpus[1];
        var k = new BusyTask(9200, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        PlaceTasks(c0, k, new BusyTask(9100, c0, 10, null));
        PlaceBoundTasks(sim, 1, 4);
        for (int i = 1; i <= 3; i++)
        {
            Assert.False(sim.Sched.LoadBalance(c1, i * 1_000_000, Scheduler.CpuIdleType.NotIdle));
            Assert.Equal(i, c1.NrBalanceFailed);
            Assert.Equal(-1, c0.PushTo);
            Assert.Equal(Scheduler.MinBalanceIntervalNs(4), c1.BalanceIntervalNs);
        }
        Assert.Equal(0, c0.ReschedIrqs);
        sim.Sched.LoadBalance(c1, 4_000_000, Scheduler.CpuIdleType.NotIdle);
        Assert.Equal(1, c0.PushTo);
        Assert.Equal(1, c0.ReschedIrqs); // the stopper's wakeup on CPU 0
        Assert.Equal(Scheduler.CacheNiceTries + 1, c1.NrBalanceFailed);
        Assert.Equal(2 * Scheduler.MinBalanceIntervalNs(4), c1.BalanceIntervalNs);
        Assert.Equal(4, Scheduler.ActiveBalanceAfter);
        // A pending active balance is not replaced: CPU 2's own fourth failure starts none.
        Cpu c2 = sim.Cpus[2];
        c2.NrBalanceFailed = 3;
        sim.Sched.LoadBalance(c2, 5_000_000, Scheduler.CpuIdleType.NotIdle);
        Assert.Equal(1, c0.PushTo);
        Assert.Equal(Scheduler.CacheNiceTries + 1, c2.NrBalanceFailed);
        Assert.Equal(Scheduler.MinBalanceIntervalNs(4), c2.BalanceIntervalNs);
    }

    [Fact]
    public void ABusyCpuDoesNotPullWhenItHoldsTheAverage()
    {
        // Four tasks on node 0's four CPUs, two of them on CPU 0 and none on CPU 3: CPU 1, holding
        // one (the average), finds the domain balanced (its failure count reset, its interval
        // doubled), where an idle CPU would pull.
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 1));
        Cpu c0 = sim.Cpus[0], c1 = sim.Cpus[1], c3 = sim.Cpus[3];
        var a = new BusyTask(9300, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        var b = new BusyTask(9301, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        PlaceTasks(c0, a, b);
        PlaceBoundTasks(sim, 1, 3);
        c1.NrBalanceFailed = 2;
        Assert.False(sim.Sched.LoadBalance(c1, 10_000_000, Scheduler.CpuIdleType.NotIdle));
        Assert.Equal(0, c1.NrBalanceFailed);
        Assert.Equal(2 * Scheduler.MinBalanceIntervalNs(4), c1.BalanceIntervalNs);
        Assert.True(sim.Sched.LoadBalance(c3, 10_000_000, Scheduler.CpuIdleType.Idle));
        Assert.Same(b, c3.RunQueue.Single());
        Assert.Equal([a], c0.CfsTasks);
    }

    [Fact]
    public void AnIdleCpuIsBalancedAtTheTickOfACpuThatHoldsTwoTasks()
    {
        // gorman-1node: one socket of 8 CPUs, so only a CPU holding two tasks kicks the nohz idle
        // balancer. CPU 7's task ends at 50 ms (no CPU is overloaded: its newly idle balance does
        // nothing, but its rq->next_balance comes forward to its idle interval). At 100 ms a task
        // bound to CPU 0 wakes there and preempts A (allowed anywhere) at its step's end: CPU 0's
        // tick kicks the idle balancer (CPU 7), which finds A running (a failed balance) and, an
        // idle interval later, waiting — and takes it. A CPU that has gone idle does not wait for
        // the busy interval (256 ms) it was on. Without hyperthreads that takes two kicks; with the
        // preset's (4 cores x 2), CPU 7's SMT domain, whose idle interval is 2 ms, brings its
        // rq->next_balance sooner, and the balancer comes once more.
        foreach (int threads in new[] { 1, 2 })
        {
            RunConfig cfg = RunConfig.Create(machine: "gorman-1node", scaleDivisor: 1);
            Assert.Equal(2, cfg.Costs.ThreadsPerCore);
            var sim = new Sim(cfg with { Costs = cfg.Costs with { ThreadsPerCore = threads } });
            for (int c = 1; c < 7; c++)
            {
                sim.Sched.Wake(new BusyTask(9400 + c, sim.Cpus[c], 400, null), 0);
            }
            sim.Sched.Wake(new BusyTask(9407, sim.Cpus[7], 50, null), 0);
            var la = new List<(long At, int Cpu)>();
            var a = new BusyTask(9410, sim.Cpus[0], 400, la) { AllowedCpus = [0, 1, 2, 3, 4, 5, 6, 7] };
            sim.Sched.Wake(a, 0);
            sim.Sched.WakeAt(new BusyTask(9411, sim.Cpus[0], 300, null), 100_000_000);
            TestKit.DrainEvents(sim);
            int moved = la.FindIndex(e => e.Cpu != 0);
            Assert.True(moved > 0, "A never left CPU 0");
            Assert.Equal(7, la[moved].Cpu);
            Assert.InRange(la[moved].At, 100_000_000, 114_000_000);
            Assert.Equal(1, a.Migrations);
            // Each kick is a rescheduling IPI to the idle balancer (without hyperthreads two: the
            // failed balance and the one that took A); the timer that woke the bound task fired on
            // CPU 0 itself, so preempting A there took none.
            Assert.Equal(threads == 1 ? 2 : 3, sim.Cpus[7].ReschedIrqs);
            Assert.Equal(sim.Cpus[7].ReschedIrqs, sim.Cpus.Sum(c => c.ReschedIrqs));
        }
    }

    /// <summary>A task whose one step wakes <paramref name="wakes"/> halfway through.</summary>
    private sealed class WakerTask(int pid, Cpu cpu, SimTask[] wakes) : SimTask(pid, $"waker{pid}", null, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            sim.Exec.Sys += 500_000;
            foreach (SimTask t in wakes)
            {
                sim.Sched.Wake(t, sim.Exec.Now);
            }
            sim.Exec.Sys += 500_000;
            yield return Yield.Resched;
        }
    }

    [Fact]
    public void AWakeupSendsARescheduleInterruptOnlyToAnotherCpuRunningATask()
    {
        // gorman-1node, CPU 0 busy, CPU 2 idle: a task on CPU 1 wakes one task whose CPU is 0
        // (resched_curr: 0's task does not poll, an IPI) and one whose CPU is 2 (its idle task
        // polls in mwait: need_resched set, no IPI); a timer on CPU 0 wakes a third there (local).
        var sim = new Sim(RunConfig.Create(machine: "gorman-1node", scaleDivisor: 1));
        Cpu c0 = sim.Cpus[0], c2 = sim.Cpus[2];
        var toBusy = new BusyTask(9601, c0, 2, null) { AllowedCpus = [0] };
        var toIdle = new BusyTask(9602, c2, 2, null) { AllowedCpus = [2] };
        sim.Sched.Wake(new BusyTask(9600, c0, 20, null) { AllowedCpus = [0] }, 0);
        var w = new WakerTask(9603, sim.Cpus[1], [toBusy, toIdle]) { AllowedCpus = [1] };
        sim.Sched.Wake(w, 0);
        sim.Sched.WakeAt(new BusyTask(9604, c0, 2, null) { AllowedCpus = [0] }, 5_000_000);
        TestKit.DrainEvents(sim);
        Assert.Equal(TaskState.Exited, toBusy.State);
        Assert.Equal(TaskState.Exited, toIdle.State);
        Assert.Equal(1, c0.ReschedIrqs);
        Assert.Equal(0, c2.ReschedIrqs);
        Assert.Equal(1, sim.Cpus.Sum(c => c.ReschedIrqs));
    }

    /// <summary>small-2node (2 nodes x 4 CPUs) with two hyperthreads a core: cores {0,1}, {2,3} on node 0.</summary>
    private static Sim SmtSim()
    {
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 1);
        return new Sim(cfg with { Costs = cfg.Costs with { ThreadsPerCore = 2 } });
    }

    [Fact]
    public void AThreadPullsTheWaitingTaskOfItsBusierSiblingAtTheSmtLevel()
    {
        // Core {0,1}: CPU 0 runs a task and has one waiting (both allowed on 0-3), CPU 1 runs one.
        // The SMT domain (imbalance_pct 110) finds 2 against 1 unbalanced and CPU 1 takes the
        // waiting task; the socket's domain would too, but only CPU 0, its core's first CPU, may
        // balance it while neither thread is idle (should_we_balance).
        Sim sim = SmtSim();
        Cpu c0 = sim.Cpus[0], c1 = sim.Cpus[1];
        var a = new BusyTask(9700, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        var b = new BusyTask(9701, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        PlaceTasks(c0, a, b);
        PlaceTasks(c1, new BusyTask(9702, c1, 10, null) { AllowedCpus = [1] });
        PlaceBoundTasks(sim, 2, 4);
        Assert.False(sim.Sched.LoadBalance(c1, 10_000_000, Scheduler.CpuIdleType.NotIdle, Scheduler.Level.Mc, out bool goOn));
        Assert.False(goOn);
        Assert.Equal(2, c0.CfsTasks.Count);
        Assert.True(sim.Sched.LoadBalance(c1, 10_000_000, Scheduler.CpuIdleType.NotIdle, Scheduler.Level.Smt, out goOn));
        Assert.True(goOn);
        Assert.Same(b, c1.RunQueue.Single());
        Assert.Equal([a], c0.CfsTasks);
        Assert.Equal(Scheduler.MinBalanceIntervalNs(2), c1.SmtBalanceIntervalNs);
    }

    [Fact]
    public void TheSocketDomainBalancesCoresAndItsCoresFirstCpuBalancesIt()
    {
        // Core {0,1} holds three tasks (CPU 0 two), core {2,3} two: by cores, 3 against 2 is more
        // than 117%, and CPU 2 — its core's first CPU — takes the task waiting on CPU 0. With a
        // task more on core {2,3} (3 against 3) the socket is balanced.
        Sim sim = SmtSim();
        Cpu c0 = sim.Cpus[0], c2 = sim.Cpus[2], c3 = sim.Cpus[3];
        var a = new BusyTask(9710, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        var b = new BusyTask(9711, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
        PlaceTasks(c0, a, b);
        PlaceBoundTasks(sim, 1, 4);
        Assert.False(sim.Sched.LoadBalance(c3, 10_000_000, Scheduler.CpuIdleType.NotIdle, Scheduler.Level.Mc, out bool goOn));
        Assert.False(goOn); // CPU 3 is not its core's balancing CPU
        Assert.True(sim.Sched.LoadBalance(c2, 10_000_000, Scheduler.CpuIdleType.NotIdle));
        Assert.Same(b, c2.RunQueue.Single());

        Sim even = SmtSim();
        Cpu e0 = even.Cpus[0], e2 = even.Cpus[2];
        PlaceTasks(e0, new BusyTask(9720, e0, 10, null) { AllowedCpus = [0, 1, 2, 3] }, new BusyTask(9721, e0, 10, null) { AllowedCpus = [0, 1, 2, 3] });
        PlaceBoundTasks(even, 1, 3);
        Cpu e3 = even.Cpus[3];
        PlaceTasks(e3, new BusyTask(9722, e3, 10, null) { AllowedCpus = [3] }, new BusyTask(9723, e3, 10, null) { AllowedCpus = [3] });
        Assert.False(even.Sched.LoadBalance(e2, 10_000_000, Scheduler.CpuIdleType.NotIdle));
        Assert.Equal(2, e0.CfsTasks.Count);
    }

    [Fact]
    public void AWakeupTakesAnIdleCoreBeforeAnIdleThreadBesideABusyOne()
    {
        // Node 0: CPU 0 busy (the woken task's last CPU), CPU 1 idle, core {2,3} idle. Without
        // hyperthreads the first idle CPU of the node (1) takes the wakeup; with them 4.0's
        // select_idle_sibling takes the idle core's first thread (2). With core {2,3} half busy,
        // the idle sibling of the last CPU (1).
        foreach (var (smt, busy3, expect) in new[] { (false, false, 1), (true, false, 2), (true, true, 1) })
        {
            RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 1);
            var sim = new Sim(cfg with { Costs = cfg.Costs with { ThreadsPerCore = smt ? 2 : 1 } });
            Cpu c0 = sim.Cpus[0];
            PlaceTasks(c0, new BusyTask(9730, c0, 10, null) { AllowedCpus = [0] });
            if (busy3)
            {
                PlaceTasks(sim.Cpus[3], new BusyTask(9731, sim.Cpus[3], 10, null) { AllowedCpus = [3] });
            }
            var w = new BusyTask(9732, c0, 10, null) { AllowedCpus = [0, 1, 2, 3] };
            sim.Sched.Wake(w, 1_000_000);
            Assert.Equal(expect, w.HomeCpu.Id);
        }
    }

    /// <summary>Charges FaultEntryNs as the step's constants give it, and records each charge.</summary>
    private sealed class CostLogTask(int pid, Cpu cpu, int steps, List<long> charged) : SimTask(pid, $"cost{pid}", null, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            for (int i = 0; i < steps; i++)
            {
                Assert.Same(sim.Costs, sim.Exec.Costs);
                long ns = sim.Costs.FaultEntryNs;
                charged.Add(ns);
                sim.Exec.Sys += ns;
                yield return Yield.Resched;
            }
        }
    }

    [Fact]
    public void AThreadAloneOnItsCoreRunsTheCoreBoundConstantsInSmtThroughputOver200OfTheTime()
    {
        // Core {0,1} of small-2node with two threads a core and smt_throughput_pct 115: a task
        // alone on the core runs each step's FaultEntryNs in 0.575 of the constant's time; two
        // tasks on its two threads at once run it at the constant, as does a thread beside a
        // sibling that only handles an interrupt.
        RunConfig cfg = RunConfig.Create(machine: "small-2node", scaleDivisor: 1);
        cfg = cfg with { Costs = cfg.Costs with { ThreadsPerCore = 2, SmtThroughputPct = 115 } };
        var sim = new Sim(cfg);
        long full = sim.MachineCosts.FaultEntryNs;
        long lone = (long)Math.Round(full * 115 / 200.0, MidpointRounding.AwayFromZero);
        Assert.True(lone < full);
        var alone = new List<long>();
        sim.Sched.Wake(new CostLogTask(9800, sim.Cpus[0], 3, alone), 0);
        TestKit.DrainEvents(sim);
        Assert.Equal([lone, lone, lone], alone);
        Assert.Equal(3 * lone + 2 * sim.MachineCosts.LoneThread().ContextSwitchNs, sim.Sched.LoneNs); // with the switch in and do_exit's

        var pair = new Sim(cfg);
        var on0 = new List<long>();
        var on1 = new List<long>();
        pair.Sched.Wake(new CostLogTask(9801, pair.Cpus[0], 3, on0), 0);
        pair.Sched.Wake(new CostLogTask(9802, pair.Cpus[1], 3, on1), 0);
        TestKit.DrainEvents(pair);
        Assert.Equal([full, full, full], on0);
        Assert.Equal([full, full, full], on1);
        Assert.Equal(0, pair.Sched.LoneNs);

        // One thread a core (hyperthreading off) at 115: every thread is alone, runs the lone
        // constants and counts all its CPU time as alone (`lone_thread_s`).
        var htOff = new Sim(cfg with { Costs = cfg.Costs with { ThreadsPerCore = 1 } });
        var single = new List<long>();
        htOff.Sched.Wake(new CostLogTask(9804, htOff.Cpus[0], 3, single), 0);
        TestKit.DrainEvents(htOff);
        Assert.Equal([lone, lone, lone], single);
        Assert.Equal(htOff.Cpus.Sum(c => c.UserNs + c.SysNs), htOff.Sched.LoneNs);
        Assert.True(htOff.Sched.LoneNs > 0);

        // The other core's threads are no siblings of CPU 0; a handler running on CPU 1 is.
        var other = new Sim(cfg);
        Assert.True(other.Sched.Alone(other.Cpus[0], 0));
        PlaceTasks(other.Cpus[2], new BusyTask(9803, other.Cpus[2], 10, null));
        Assert.True(other.Sched.Alone(other.Cpus[0], 0));
        other.Cpus[1].IrqBusyUntil = 5_000;
        Assert.False(other.Sched.Alone(other.Cpus[0], 4_999));
        Assert.Same(other.MachineCosts, other.Sched.CostsOn(other.Cpus[0], 4_999));
        Assert.True(other.Sched.Alone(other.Cpus[0], 5_000));

        // Without hyperthreads every thread is alone: at 200 (the default) at the constants, below it faster.
        RunConfig flat = RunConfig.Create(machine: "small-2node", scaleDivisor: 1);
        var noSmt = new Sim(flat);
        Assert.Same(noSmt.MachineCosts, noSmt.Sched.CostsOn(noSmt.Cpus[0], 0));
        var fast = new Sim(flat with { Costs = flat.Costs with { SmtThroughputPct = 115 } });
        Assert.Equal(lone, fast.Sched.CostsOn(fast.Cpus[0], 0).FaultEntryNs);
    }

    [Fact]
    public void OneThreadACoreOnTheCommandLineAdmitsANodeOfThreeCpus()
    {
        // --cost applies before the configuration is checked: on gorman-4node (two threads a core)
        // --cpus-per-node 3 needs --cost threads_per_core=1, and with it is accepted (session 47's
        // last commit checked the cores before the --cost overrides and refused it).
        var (code, stdout, stderr) = CliTests.Cli("config", "--machine", "gorman-4node", "--cpus-per-node", "3", "--cost", "threads_per_core=1", "--cost", "smt_throughput_pct=200", "--format", "json");
        Assert.True(code == 0, stderr);
        var costs = System.Text.Json.Nodes.JsonNode.Parse(stdout)!["costs"]!;
        Assert.Equal(1, (int)costs["threads_per_core"]!);
        Assert.Equal(200, (int)costs["smt_throughput_pct"]!);
        var (refused, _, err) = CliTests.Cli("config", "--machine", "gorman-4node", "--cpus-per-node", "3");
        Assert.Equal(2, refused);
        Assert.Contains("threads_per_core = 2 does not divide a node's 3 CPUs", err);
    }

    [Fact]
    public void ThreadsPerCoreMustDivideANodesCpus()
    {
        // Refused when the run is configured, before any work: gorman-4node has two threads a core.
        var early = Assert.Throws<ConfigException>(() => RunConfig.Create(machine: "gorman-4node", cpusPerNode: 3, scaleDivisor: 16));
        Assert.Equal("threads_per_core = 2 does not divide a node's 3 CPUs into cores; give a multiple of it with --cpus-per-node, or --cost threads_per_core=1 (with --cost smt_throughput_pct=200 to keep each thread at the constants' speed)", early.Message);
        Assert.Equal("costs.threads_per_core", early.Key);
        // And by the scheduler, for a configuration changed after it was checked.
        RunConfig cfg = RunConfig.Create(machine: "small-2node", cpusPerNode: 3, scaleDivisor: 1);
        var e = Assert.Throws<ConfigException>(() => new Sim(cfg with { Costs = cfg.Costs with { ThreadsPerCore = 2 } }));
        Assert.Contains("threads_per_core = 2", e.Message);
        Assert.Contains("3 CPUs", e.Message);
        Assert.Equal("costs.threads_per_core", e.Key);
    }
}
