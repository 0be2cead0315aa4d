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
}
