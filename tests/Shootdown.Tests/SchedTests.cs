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
    private sealed class BusyTask(int pid, Cpu cpu, int steps, List<(long At, int Cpu)>? log) : SimTask(pid, $"busy{pid}", null, cpu)
    {
        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            for (int i = 0; i < steps; i++)
            {
                log?.Add((sim.Exec.Start, sim.Exec.Cpu.Id));
                sim.Exec.Sys += 1_000_000;
                yield return Yield.Resched;
            }
        }
    }

    [Fact]
    public void ATaskSharingABusyCpuStaysUntilAnotherCpusPeriodicBalancePullsIt()
    {
        // Node 0 of small-2node: CPUs 0-3, each busy with a task bound to it; a fifth task allowed
        // on all four starts on CPU 0 and shares it. 4.0's CFS leaves it there at its slice ends
        // and a busy CPU's periodic balance (every 4 x 32 ms here) pulls it: the first balance of
        // CPU 1, 2 or 3 after it woke decides when and where it goes.
        var sim = new Sim(RunConfig.Create(machine: "small-2node", scaleDivisor: 1));
        for (int c = 0; c < 4; c++)
        {
            sim.Sched.Wake(new BusyTask(9100 + c, sim.Cpus[c], 600, null), 0);
        }
        var log = new List<(long At, int Cpu)>();
        var k = new BusyTask(9200, sim.Cpus[0], 600, log) { AllowedCpus = [0, 1, 2, 3] };
        sim.Sched.Wake(k, 0);
        TestKit.DrainEvents(sim);
        Assert.Equal(128_000_000, Scheduler.BusyBalanceIntervalNs(4));
        Assert.Equal(16_000_000, Scheduler.BusyBalanceIntervalNs(4, scale: 8));
        (long pullAt, int pullCpu) = sim.Sched.NextPull(k, sim.Cpus[0], 0);
        Assert.InRange(pullAt, 0, Scheduler.BusyBalanceIntervalNs(4));
        Assert.NotEqual(0, pullCpu);
        int firstMove = log.FindIndex(e => e.Cpu != 0);
        Assert.True(firstMove > 0, "the task never left CPU 0");
        Assert.All(log.Take(firstMove), e => Assert.Equal(0, e.Cpu));
        Assert.Equal(pullCpu, log[firstMove].Cpu);
        // It moves at its first slice end at or after the balance — after the other task's slice
        // and its own at most — and runs there once that CPU's task reaches its next step end.
        Assert.InRange(log[firstMove].At, pullAt, pullAt + 2 * sim.Costs.SchedSliceNs + 2_000_000);
        // Sharing CPU 0 with its bound task until then, it ran about half of that time there.
        Assert.InRange(firstMove, pullAt / 1_000_000 / 2 - 4, pullAt / 1_000_000 / 2 + 4);
        // Over its whole run (about 1.2 s, half of each CPU it shares) it moves only when a
        // balance of one of the three other CPUs comes, about every 128 / 4 ms: a few dozen times,
        // where moving on at every slice end (3 ms of its own, 3 of the other's) would be about 200.
        int moves = 0;
        for (int i = 1; i < log.Count; i++)
        {
            if (log[i].Cpu != log[i - 1].Cpu)
            {
                moves++;
            }
        }
        Assert.InRange(moves, 10, 70);
        // Each stay outlasts a slice on average.
        Assert.True((log[^1].At - log[0].At) / (double)(moves + 1) > 3 * sim.Costs.SchedSliceNs, $"{moves} moves");
    }
}
