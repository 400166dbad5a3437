package org.mergeengine.formats;

import org.mergeengine.MergeException;

/** A file that is not what it claims to be; the message names the file (and tensor, where one is involved). */
public class FormatException extends MergeException {
    public FormatException(String message) {
        super(Kind.USER, message);
    }

    public FormatException(String message, Throwable cause) {
        super(Kind.USER, message, cause);
    }
}
