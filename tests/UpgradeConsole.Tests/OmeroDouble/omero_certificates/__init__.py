"""Test double of omero-certificates: sets the configuration keys it sets when they are empty, then
makes a self-signed key, certificate and PKCS12 bundle with the real openssl (see ../README.md)."""
import logging
import os
import subprocess

__VERSION__ = "0.0.0"
log = logging.getLogger("omero_certificates")


def main(omerodir, config, out):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = config.read(omerodir)

    def set_if_empty(key, default):
        if not cfg.get(key):
            config.write(omerodir, key, default)
            cfg[key] = default
            log.info("Setting %s=%s", key, default)

    data_dir = cfg.get("omero.data.dir") or "/OMERO"
    set_if_empty("omero.glacier2.IceSSL.DefaultDir", os.path.join(data_dir, "certs"))
    set_if_empty("omero.certificates.commonname", "localhost")
    set_if_empty("omero.certificates.owner", "/L=OMERO/O=OMERO.server")
    set_if_empty("omero.certificates.key", "server.key")
    set_if_empty("omero.glacier2.IceSSL.CertFile", "server.p12")
    set_if_empty("omero.glacier2.IceSSL.CAs", "server.pem")
    set_if_empty("omero.glacier2.IceSSL.Password", "secret")
    set_if_empty("omero.glacier2.IceSSL.Ciphers", "HIGH!DHE")
    set_if_empty("omero.glacier2.IceSSL.ProtocolVersionMax", "TLS1_3")
    set_if_empty("omero.glacier2.IceSSL.Protocols", "TLS1_2,TLS1_3")

    certdir = cfg["omero.glacier2.IceSSL.DefaultDir"]
    os.makedirs(certdir, exist_ok=True)
    key = os.path.join(certdir, cfg["omero.certificates.key"])
    pem = os.path.join(certdir, cfg["omero.glacier2.IceSSL.CAs"])
    p12 = os.path.join(certdir, cfg["omero.glacier2.IceSSL.CertFile"])

    def openssl(args):
        log.info("Executing: %s", " ".join(["openssl"] + args))
        subprocess.run(["openssl"] + args, check=True)

    openssl(["version"])
    if os.path.exists(key):
        log.info("Using existing key: %s", key)
    else:
        log.info("Creating self-signed CA key: %s", key)
        openssl(["genrsa", "-out", key, "2048"])
    log.info("Creating self-signed certificate: %s", pem)
    openssl(["req", "-new", "-nodes", "-x509", "-subj", cfg["omero.certificates.owner"] + "/CN=" + cfg["omero.certificates.commonname"],
             "-days", "365", "-key", key, "-out", pem, "-extensions", "v3_ca"])
    log.info("Creating PKCS12 bundle: %s", p12)
    openssl(["pkcs12", "-export", "-out", p12, "-inkey", key, "-in", pem, "-name", "server",
             "-password", "pass:" + cfg["omero.glacier2.IceSSL.Password"]])
    out("certificates created: %s %s %s" % (key, pem, p12))
