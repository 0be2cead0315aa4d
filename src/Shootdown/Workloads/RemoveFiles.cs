using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Workloads;

/// <summary>
/// The <c>rm</c> a vm-scalability case runs after its <c>wait</c> (case-lru-file-mmap-read ends
/// with <c>rm</c> of its sparse files [vm-scalability]), inside the time mmtests measures
/// (vmscale-bench times the whole case script [mmtests]). Each unlink drops the file's last link;
/// with no user left, iput_final evicts the inode and truncate_inode_pages_final frees every page
/// it still has cached — at the end of the run, most of memory — one CPU, file after file. The
/// unlink system calls themselves and the fork/exec of rm (microseconds) are not charged.
/// </summary>
public sealed class RemoveFiles(int pid, Cpu cpu, IReadOnlyList<AddressSpace> files)
: SimTask(pid, "rm", null, cpu)
{
    /// <summary>The script's children still running: one reader per file.</summary>
    private int _running = files.Count;

    /// <summary>A reader has exited; the script's wait returns with the last, and rm starts.</summary>
    public void ChildExited(Sim sim, long t)
    {
        if (--_running == 0)
        {
            sim.Sched.Wake(this, t);
        }
    }

    /// <summary>How long the script sleeps between its <c>wait</c> and the <c>rm</c> (case-lru-file-readonce: <c>sleep 1</c>).</summary>
    public long SleepFirstNs { get; init; }

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        if (SleepFirstNs > 0)
        {
            sim.Sched.WakeAt(this, sim.Exec.Now + SleepFirstNs);
            yield return Yield.Sleep;
        }
        foreach (AddressSpace file in files)
        {
            yield return Process.Call(sim.Truncate.TruncateInodePagesFinal(file));
        }
    }
}
