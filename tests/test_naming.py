"""The output file name the CLI and the web UI share."""

from svc.naming import output_filename


def test_output_filename_format_and_safety():
    assert output_filename("song", "alice", 3, "flac") == "song_alice_+3key.flac"
    assert output_filename("song", "bob", -2.5, "wav") == "song_bob_-2.5key.wav"
    assert output_filename("a/../b c", "x:y", 0, "wav") == "a_.._b_c_x_y_+0key.wav"
    assert output_filename("歌", "ミク", 0, "wav") == "歌_ミク_+0key.wav"  # letters of any script are kept
    long = output_filename("s" * 200, "p" * 200, 12, "wav")
    assert long == "s" * 60 + "_" + "p" * 40 + "_+12key.wav"
