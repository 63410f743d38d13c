# Seed 003_53eaec948bc5f072.txt, 客户端 (talks to 服务端, which answers
# each recv upper-cased; ported as examples/upper_server.rs).
# Changed: the test replaces the port 8080 with the server's. Nothing
# else. It loops on input() for ever: it ends with EOFError at the end of
# its input, as it would on Ctrl-D.
import socket
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.connect(('127.0.0.1', 8080))
while True:
    msg = input('请输入你要发送的数据:')
    client.send(msg.encode('utf-8'))
    data = client.recv(1024)
    print(data)
client.close()
