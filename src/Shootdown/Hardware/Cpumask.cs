using System.Numerics;

namespace Shootdown.Hardware;

/// <summary>
/// A fixed-size CPU bitset, like the kernel's <c>struct cpumask</c>. Set, test and union are
/// word operations, so the cost of a flush decision grows with CPUs/64, not with CPUs.
/// </summary>
public sealed class Cpumask
{
    private readonly ulong[] _bits;

    public Cpumask(int nrCpus)
    {
        NrCpus = nrCpus;
        _bits = new ulong[(nrCpus + 63) >> 6];
    }

    public int NrCpus { get; }

    public void Set(int cpu) => _bits[cpu >> 6] |= 1UL << (cpu & 63);

    public void Clear(int cpu) => _bits[cpu >> 6] &= ~(1UL << (cpu & 63));

    public bool Test(int cpu) => (_bits[cpu >> 6] & (1UL << (cpu & 63))) != 0;

    public void ClearAll() => Array.Clear(_bits);

    /// <summary>this |= other (cpumask_or).</summary>
    public void Or(Cpumask other)
    {
        ulong[] o = other._bits;
        for (int i = 0; i < _bits.Length; i++)
        {
            _bits[i] |= o[i];
        }
    }


    public bool IsEmpty
    {
        get
        {
            foreach (ulong w in _bits)
            {
                if (w != 0)
                {
                    return false;
                }
            }
            return true;
        }
    }

    public int Weight
    {
        get
        {
            int n = 0;
            foreach (ulong w in _bits)
            {
                n += BitOperations.PopCount(w);
            }
            return n;
        }
    }

    /// <summary>cpumask_any_but: true when some CPU other than <paramref name="cpu"/> is set.</summary>
    public bool AnyBut(int cpu)
    {
        for (int i = 0; i < _bits.Length; i++)
        {
            ulong w = _bits[i];
            if (i == cpu >> 6)
            {
                w &= ~(1UL << (cpu & 63));
            }
            if (w != 0)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Next set CPU at or after <paramref name="from"/>, or -1.</summary>
    public int NextSet(int from)
    {
        if (from >= NrCpus)
        {
            return -1;
        }
        int wi = from >> 6;
        ulong w = _bits[wi] & (ulong.MaxValue << (from & 63));
        while (true)
        {
            if (w != 0)
            {
                int cpu = (wi << 6) + BitOperations.TrailingZeroCount(w);
                return cpu < NrCpus ? cpu : -1;
            }
            if (++wi >= _bits.Length)
            {
                return -1;
            }
            w = _bits[wi];
        }
    }
}
