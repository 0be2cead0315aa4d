using System.Globalization;
using System.Numerics;
using Shootdown.Hardware;

namespace Shootdown;

/// <summary>
/// Parsing of integer values users give (options, configuration keys). A value that is not an
/// integer is a format error; an integer outside the allowed range is a range error naming the
/// range. Both throw <see cref="ConfigException"/>; long values are shortened in messages.
/// </summary>
public static class ParseArg
{
    /// <summary>Parses an integer in [min, max]; <paramref name="what"/> names it ("--nodes").</summary>
    public static long Integer(string s, string what, long min, long max)
    {
        BigInteger v = Big(s, what, min, max);
        if (v < min || v > max)
        {
            throw new ConfigException($"{what} must be in {min}..{max}, got {Clip(s.Trim())}");
        }
        return (long)v;
    }

    /// <summary>Parses an unsigned 64-bit integer in [min, max].</summary>
    public static ulong Unsigned(string s, string what, ulong min = 0, ulong max = ulong.MaxValue)
    {
        BigInteger v = Big(s, what, min, max);
        if (v < min || v > max)
        {
            throw new ConfigException($"{what} must be in {min}..{max}, got {Clip(s.Trim())}");
        }
        return (ulong)v;
    }

    private static BigInteger Big(string s, string what, BigInteger min, BigInteger max)
    {
        string t = s.Trim();
        if (t.Length > 0 && t.Length < 400
            && BigInteger.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out BigInteger v))
        {
            return v;
        }
        if (t.Length >= 400 && t.TrimStart('-', '+').All(char.IsAsciiDigit))
        {
            throw new ConfigException($"{what} must be in {min}..{max}, got {Clip(t)}");
        }
        throw new ConfigException($"{what} must be an integer in {min}..{max}, got '{Clip(s)}'");
    }

    /// <summary>A value as echoed in a message: at most 60 characters, longer ones cut with their length.</summary>
    public static string Clip(string s) =>
        s.Length <= 60 ? s : string.Concat(s.AsSpan(0, 40), $"... ({s.Length} characters)");
}
